// JSON in and out for the model: decoding errors name the field by its JSON path
// ("process.user.uid", "mounts[2].destination"), so every layer reports them the same way. One
// exception: Foundation's decoder reports a number outside its field's type (1.5 or -2 for an
// unsigned field) as invalid JSON without a path, so the field is "(document)".

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A document (config.json, an exec's Process, an update's LinuxResources) that does not decode.
public struct OCIDecodingError: Error, Equatable, Sendable, CustomStringConvertible {
    /// The JSON path of the field, or "(document)".
    public var field: String
    public var reason: String

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    public var description: String { "invalid OCI spec: \(field): \(reason)" }
}

/// A value the encoder refused (none of the model's types should produce one).
public struct OCIEncodingError: Error, Sendable, CustomStringConvertible {
    public var reason: String
    public var description: String { "cannot encode the OCI spec: \(reason)" }
}

public enum OCIJSON {
    /// Decodes any part of the model (OCISpec, OCIProcess, OCIResources...).
    public static func decode<T: Decodable>(_ type: T.Type, _ json: [UInt8]) throws(OCIDecodingError) -> T {
        do {
            return try JSONDecoder().decode(T.self, from: Data(json))
        } catch let error as DecodingError {
            switch error {
            case .typeMismatch(_, let context), .valueNotFound(_, let context), .dataCorrupted(let context):
                throw OCIDecodingError(field: fieldPath(context.codingPath), reason: context.debugDescription)
            case .keyNotFound(let key, let context):
                throw OCIDecodingError(field: fieldPath(context.codingPath + [key]), reason: "required field is missing")
            @unknown default:
                throw OCIDecodingError(field: "(document)", reason: "\(error)")
            }
        } catch {
            throw OCIDecodingError(field: "(document)", reason: "\(error)")
        }
    }

    /// Compact JSON with sorted keys and unescaped slashes, as the agent and tests read it.
    public static func encode<T: Encodable>(_ value: T) throws(OCIEncodingError) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            return Array(try encoder.encode(value))
        } catch {
            throw OCIEncodingError(reason: "\(error)")
        }
    }

    static func fieldPath(_ path: [any CodingKey]) -> String {
        if path.isEmpty { return "(document)" }
        var out = ""
        for key in path {
            if let index = key.intValue {
                out += "[\(index)]"
            } else {
                out += out.isEmpty ? key.stringValue : ".\(key.stringValue)"
            }
        }
        return out
    }
}
