// Every committed fuzz input, corpus and regressions alike, runs through its target: a crash the
// fuzzer found stays fixed once its input is in Tests/Fuzz/regressions/<target>/.
import Foundation
import FuzzTargets
import Testing

@Suite struct CorpusReplayTests {
    /// Tests/Fuzz, found from this file's path.
    static let fuzzDirectory = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Fuzz")

    static func inputs(_ kind: String, _ target: FuzzTarget) -> [URL] {
        let dir = fuzzDirectory.appendingPathComponent(kind).appendingPathComponent(target.rawValue)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { dir.appendingPathComponent($0) }
    }

    @Test(arguments: FuzzTarget.allCases)
    func corpusReplays(_ target: FuzzTarget) throws {
        let files = Self.inputs("corpus", target)
        #expect(!files.isEmpty, "no corpus for \(target.rawValue)")
        for file in files {
            target.run(try [UInt8](Data(contentsOf: file)))
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func regressionsReplay(_ target: FuzzTarget) throws {
        for file in Self.inputs("regressions", target) {
            target.run(try [UInt8](Data(contentsOf: file)))
        }
    }

    @Test(arguments: FuzzTarget.allCases)
    func seedsRun(_ target: FuzzTarget) {
        #expect(!target.seeds.isEmpty)
        for seed in target.seeds { target.run(seed.bytes) }
    }
}
