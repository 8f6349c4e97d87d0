// Conversions between our Swift types and the ttrpc envelope (Protos/ttrpc.proto).
import SwiftProtobuf

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension Ttrpc_Response {
    /// The response frame payload for a call's outcome. A response too large for one frame
    /// becomes ResourceExhausted, as a ttrpc server does.
    static func encoded(_ result: Result<[UInt8], TTRPCError>) -> [UInt8] {
        var response = Ttrpc_Response()
        switch result {
        case .success(let payload):
            response.payload = Data(payload)
        case .failure(let error):
            response.status = Google_Rpc_Status(error)
        }
        // A Response holds only strings, bytes and an int: serialization cannot fail.
        let bytes: [UInt8] = (try? response.serializedBytes()) ?? []
        if bytes.count > FrameHeader.maxPayload {
            let error = TTRPCError(
                .resourceExhausted, "response of \(bytes.count) bytes exceeds the \(FrameHeader.maxPayload) byte frame limit")
            return encoded(.failure(error))
        }
        return bytes
    }

    /// The call's outcome as the client sees it.
    var outcome: Result<[UInt8], TTRPCError> {
        if hasStatus, status.code != TTRPCStatusCode.ok.rawValue {
            return .failure(TTRPCError(TTRPCStatusCode(rawValue: status.code), status.message))
        }
        return .success([UInt8](payload))
    }
}

extension Ttrpc_Request {
    init(service: String, method: String, payload: [UInt8], options: TTRPCCallOptions) {
        self.init()
        self.service = service
        self.method = method
        self.payload = Data(payload)
        if let timeout = options.timeout {
            // 0 means "no deadline" on the wire: an expired timeout is sent as 1 ns.
            timeoutNano = max(1, timeout.wholeNanoseconds)
        }
        metadata = options.metadata.wire
    }
}

extension Google_Rpc_Status {
    init(_ error: TTRPCError) {
        self.init()
        code = error.code.rawValue
        message = error.message
    }
}
