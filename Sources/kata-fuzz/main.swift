// kata-fuzz: runs one fuzz target of FuzzTargets.
//   kata-fuzz list                       the targets
//   kata-fuzz seed <corpus-dir>          writes each target's seeds to <corpus-dir>/<target>/
//   kata-fuzz <target> <file|dir>...     replays inputs through the target (any build)
//   kata-fuzz <target> [libFuzzer args]  fuzzes (fuzz build only: make fuzz, docs/fuzzing.md)
// The fuzz build is compiled with -DKATA_FUZZ and sanitizer coverage, and links libFuzzer's
// no-main runtime; this main hands the arguments to its driver.
import FuzzTargets
import Glibc
import Logging
import SystemSupport

#if KATA_FUZZ
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(
    _ argc: UnsafeMutablePointer<Int32>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// The target libFuzzer calls into; set once before the driver starts.
nonisolated(unsafe) var selectedTarget = FuzzTarget.config

/// Hands argv[0] and `libFuzzerArguments` to libFuzzer's driver, fuzzing `target`.
func runFuzzer(_ target: FuzzTarget, libFuzzerArguments: [String]) -> Never {
    selectedTarget = target
    var argv: [UnsafeMutablePointer<CChar>?] = ([CommandLine.arguments[0]] + libFuzzerArguments).map { strdup($0) } + [nil]
    var argc = Int32(argv.count - 1)
    let status = argv.withUnsafeMutableBufferPointer { buffer -> Int32 in
        guard var base = buffer.baseAddress else { return 2 }
        return LLVMFuzzerRunDriver(&argc, &base) { data, size in
            selectedTarget.run(size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size)))
            return 0
        }
    }
    exit(status)
}
#endif

func fail(_ message: String) -> Never {
    let line = "kata-fuzz: \(message)\n"
    _ = line.withCString { write(2, $0, strlen($0)) }
    exit(2)
}

/// Regular files named by `paths`, directories expanded one level, sorted.
func inputFiles(_ paths: [String]) -> [String] {
    var files: [String] = []
    for path in paths {
        var st = stat()
        guard stat(path, &st) == 0 else { fail("\(path): no such file or directory") }
        guard st.st_mode & S_IFMT == S_IFDIR else {
            files.append(path)
            continue
        }
        guard let dir = opendir(path) else { fail("\(path): cannot open") }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                raw.bindMemory(to: CChar.self).baseAddress.map { String(cString: $0) } ?? ""
            }
            if !name.isEmpty, !name.hasPrefix(".") { names.append(name) }
        }
        files += names.sorted().map { path + "/" + $0 }
    }
    return files
}

func writeSeeds(to root: String) {
    for target in FuzzTarget.allCases {
        let dir = root + "/" + target.rawValue
        mkdir(root, 0o755)
        mkdir(dir, 0o755)
        for seed in target.seeds {
            let path = dir + "/seed-" + seed.name
            guard let file = fopen(path, "wb") else { fail("\(path): cannot create") }
            _ = seed.bytes.withUnsafeBytes { fwrite($0.baseAddress, 1, $0.count, file) }
            fclose(file)
            print("\(path): \(seed.bytes.count) bytes")
        }
    }
}

// Devices log a hostile guest's every misstep (rate-limited); millions of inputs need silence.
LoggingSystem.bootstrap { _ in SwiftLogNoOpLogHandler() }

let arguments = CommandLine.arguments
guard arguments.count >= 2 else {
    fail("usage: kata-fuzz list | seed <corpus-dir> | <target> [files, directories or libFuzzer arguments]")
}
#if KATA_FUZZ
// libFuzzer re-runs this binary for -merge, -fork and -jobs with the arguments it was given, which
// no longer name the target: the environment carries it to those children.
if FuzzTarget(rawValue: arguments[1]) == nil, let name = getenv("KATA_FUZZ_TARGET"),
    let target = FuzzTarget(rawValue: String(cString: name))
{
    runFuzzer(target, libFuzzerArguments: Array(arguments.dropFirst()))
}
#endif

switch arguments[1] {
case "list":
    for target in FuzzTarget.allCases { print(target.rawValue, target.maxLength) }
case "seed":
    guard arguments.count == 3 else { fail("usage: kata-fuzz seed <corpus-dir>") }
    writeSeeds(to: arguments[2])
default:
    guard let target = FuzzTarget(rawValue: arguments[1]) else {
        fail("unknown target \(arguments[1]); targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", "))")
    }
    #if KATA_FUZZ
    setenv("KATA_FUZZ_TARGET", target.rawValue, 1)
    runFuzzer(target, libFuzzerArguments: Array(arguments.dropFirst(2)))
    #else
    let files = inputFiles(Array(arguments.dropFirst(2)))
    for file in files {
        guard let bytes = try? readWholeFile(file) else { fail("\(file): cannot read") }
        target.run(bytes)
    }
    print("kata-fuzz \(target.rawValue): \(files.count) inputs replayed, no crash")
    #endif
}
