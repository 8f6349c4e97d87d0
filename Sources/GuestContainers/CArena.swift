// C memory for one call into ks_container.c: strings and arrays that stay valid until the arena
// is released. The child of a clone reads its own copy; nothing is shared after the call.
import Glibc

final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit {
        for b in blocks { free(b) }
    }

    /// A NUL-terminated copy of `s`.
    func string(_ s: String) -> UnsafePointer<CChar> {
        let p = strdup(s)!  // strdup fails only when malloc does; a crash is the right answer there.
        blocks.append(UnsafeMutableRawPointer(p))
        return UnsafePointer(p)
    }

    func optionalString(_ s: String?) -> UnsafePointer<CChar>? {
        s.map { string($0) }
    }

    /// A NULL-terminated array of C strings (argv / envp shape).
    func strings(_ list: [String]) -> UnsafePointer<UnsafePointer<CChar>?> {
        let ptrs: [UnsafePointer<CChar>?] = list.map { string($0) } + [nil]
        return array(ptrs)
    }

    /// A copy of `items` in C memory (never NULL, even when empty).
    func array<T>(_ items: [T]) -> UnsafePointer<T> {
        let raw = malloc(max(1, items.count) * MemoryLayout<T>.stride)!
        blocks.append(raw)
        let typed = raw.bindMemory(to: T.self, capacity: max(1, items.count))
        for (i, item) in items.enumerated() { (typed + i).initialize(to: item) }
        return UnsafePointer(typed)
    }

    func bytes(_ data: [UInt8]) -> UnsafeRawPointer {
        UnsafeRawPointer(array(data))
    }
}
