// The Prometheus text exposition format (version 0.0.4), as far as kata-ctl monitor needs it: give
// every sample of a scraped text one more label (`sandbox_id`), and merge the texts of many
// sandboxes so that each family appears once, with one HELP and one TYPE line and all its samples
// together, as the format requires. The texts come from our own shims; still, a line that does
// not parse is dropped rather than passed on.

/// One metric family: its HELP and TYPE lines (when given) and its sample lines, in order.
public struct MetricFamily: Sendable, Equatable {
    public var name: String
    public var help: String?
    public var type: String?
    public var samples: [String] = []
}

public enum Exposition {
    /// The content type of the text format.
    public static let contentType = "text/plain; version=0.0.4; charset=utf-8"

    /// Splits a text into families, in order of first appearance. A sample belongs to the family
    /// the last HELP or TYPE line named when its name starts with that family's name (histograms'
    /// `_bucket`, `_sum`, `_count`); otherwise to a family of its own name.
    public static func families(_ text: String) -> [MetricFamily] {
        var order: [String] = []
        var byName: [String: MetricFamily] = [:]
        var current: String?
        func family(_ name: String) -> String {
            if byName[name] == nil {
                byName[name] = MetricFamily(name: name)
                order.append(name)
            }
            return name
        }
        for raw in text.split(separator: "\n", omittingEmptySubsequences: true) {
            let line = raw.hasSuffix("\r") ? raw.dropLast() : raw
            if line.hasPrefix("#") {
                let words = line.split(separator: " ", maxSplits: 3, omittingEmptySubsequences: true)
                guard words.count >= 3, words[1] == "HELP" || words[1] == "TYPE", isMetricName(words[2]) else { continue }
                let name = family(String(words[2]))
                current = name
                let rest = words.count > 3 ? String(words[3]) : ""
                if words[1] == "HELP" { byName[name]?.help = rest } else { byName[name]?.type = rest }
                continue
            }
            guard let sampleName = sampleName(line) else { continue }
            let owner: String
            if let current, sampleName == current || sampleName.hasPrefix(current + "_") {
                owner = current
            } else {
                owner = family(sampleName)
                current = nil
            }
            byName[owner]?.samples.append(String(line))
        }
        return order.compactMap { byName[$0] }
    }

    /// The sample line with `name="value"` as its first label.
    public static func addingLabel(_ name: String, _ value: String, to sample: String) -> String? {
        guard let metric = sampleName(Substring(sample)) else { return nil }
        let rest = sample.dropFirst(metric.utf8.count)
        let label = "\(name)=\"\(escapeLabelValue(value))\""
        if rest.hasPrefix("{") {
            let inner = rest.dropFirst()
            return metric + "{" + label + (inner.hasPrefix("}") ? "" : ",") + inner
        }
        return metric + "{" + label + "}" + rest
    }

    /// Merges texts into one, each family once. `label`, when given, is added to every sample of
    /// the text it comes with (the sandbox a shim's text belongs to).
    public static func merge(_ texts: [(text: String, label: (name: String, value: String)?)]) -> String {
        var order: [String] = []
        var merged: [String: MetricFamily] = [:]
        for (text, label) in texts {
            for family in families(text) {
                if merged[family.name] == nil {
                    merged[family.name] = MetricFamily(name: family.name, help: family.help, type: family.type)
                    order.append(family.name)
                }
                let samples = label.map { label in family.samples.compactMap { addingLabel(label.name, label.value, to: $0) } }
                    ?? family.samples
                merged[family.name]?.samples += samples
            }
        }
        var out = ""
        for name in order {
            guard let family = merged[name] else { continue }
            if let help = family.help { out += "# HELP \(name) \(help)\n" }
            if let type = family.type { out += "# TYPE \(name) \(type)\n" }
            for sample in family.samples { out += sample + "\n" }
        }
        return out
    }

    /// The metric name a sample line starts with, if it is a valid one followed by labels or a space.
    static func sampleName(_ line: Substring) -> String? {
        let end = line.firstIndex { $0 == "{" || $0 == " " } ?? line.endIndex
        let name = line[..<end]
        guard end != line.endIndex, isMetricName(name) else { return nil }
        return String(name)
    }

    /// `[a-zA-Z_:][a-zA-Z0-9_:]*`
    static func isMetricName(_ name: Substring) -> Bool {
        guard let first = name.utf8.first, !(UInt8(ascii: "0")...UInt8(ascii: "9")).contains(first) else { return false }
        return name.utf8.allSatisfy { byte in
            (UInt8(ascii: "a")...UInt8(ascii: "z")).contains(byte) || (UInt8(ascii: "A")...UInt8(ascii: "Z")).contains(byte)
                || (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || byte == UInt8(ascii: "_") || byte == UInt8(ascii: ":")
        }
    }

    /// Backslash, double quote and line feed escaped, as label values need.
    static func escapeLabelValue(_ value: String) -> String {
        var out = ""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            default: out.append(character)
            }
        }
        return out
    }
}
