// The process heap (glibc's malloc): giving back what it keeps after a burst of work. An idle
// shim's heap is part of what a pod costs (docs/performance.md, "Host memory of one idle sandbox").
import CSupport
import Synchronization

public enum Heap {
    /// Returns the free pages of every arena to the kernel now (malloc_trim). glibc by itself
    /// only shortens an arena from its top, so memory freed below a live block stays resident.
    @discardableResult
    public static func trim() -> Bool { ks_heap_trim() == 1 }

    private static let trimPending = Atomic<Bool>(false)

    /// Trims once `quiet` has passed; calls while a trim is pending fold into it. For after a
    /// burst of work whose buffers are freed: a sandbox booted and its first container started.
    public static func trimSoon(after quiet: Duration = .seconds(1)) {
        guard !trimPending.exchange(true, ordering: .acquiringAndReleasing) else { return }
        Task.detached(priority: .background) {
            try? await Task.sleep(for: quiet)
            trimPending.store(false, ordering: .releasing)
            trim()
        }
    }
}
