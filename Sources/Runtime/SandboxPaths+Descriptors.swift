// Host-side changes inside the sandbox directory, by descriptor. The share below it is writable
// by the guest while the VM runs, and the guest can swap any directory there for a symlink at any
// moment (RENAME_EXCHANGE through FUSE). So a path is resolved one component at a time with
// O_NOFOLLOW from the sandbox directory's parent (which only the host writes), names are created
// with mkdirat or O_EXCL, mounts go through /proc/self/fd, and removal walks directory
// descriptors with unlinkat: it never leaves the tree it started in.

import SystemSupport
#if canImport(Glibc)
import Glibc
#endif

extension SandboxPaths {
    /// Deepest directory level removal descends to; a guest-made tree deeper than this is left
    /// in place (and `remove` logs the leftover) rather than risking the stack or the fd limit.
    static let maxRemovalDepth = 128

    /// Opens the directory `path` (`parent` or below it) following no symlink below `parent`.
    func openDirectory(_ path: String) throws(Errno) -> FileDescriptor {
        guard path == parent || path.hasPrefix(parent + "/") else { throw .invalidArgument }
        var directory = try FileDescriptor.open(parent, O_RDONLY | O_DIRECTORY)
        for component in path.dropFirst(parent.count).split(separator: "/") {
            guard component != ".", component != ".." else { throw .invalidArgument }
            directory = try directory.openDirectory(String(component))
        }
        return directory
    }

    /// Creates the directory `name` below `directory` unless it exists, and opens it; a symlink
    /// (or anything else but a directory) in its place fails with ELOOP or ENOTDIR.
    static func makeDirectory(_ name: String, in directory: FileDescriptor) throws(Errno) -> FileDescriptor {
        if mkdirat(directory.rawValue, name, 0o700) != 0 && errno != EEXIST { throw .current }
        return try directory.openDirectory(name)
    }

    /// The path through which system calls that take only paths (mount) reach `fd`'s directory.
    static func procPath(_ fd: FileDescriptor) -> String { "/proc/self/fd/\(fd.rawValue)" }

    /// Removes `path` (below `parent`) recursively without following any symlink or entering
    /// another file system (a mount point still there is left alone, and so is everything under
    /// it). A directory swapped for a symlink during the walk is unlinked as the symlink it is.
    func removeTree(_ path: String) {
        guard let slash = path.lastIndex(of: "/"), let directory = try? openDirectory(String(path[..<slash])) else {
            return
        }
        let name = Array(String(path[path.index(after: slash)...]).utf8CString)
        var st = stat()
        guard fstatat(directory.rawValue, name, &st, AT_SYMLINK_NOFOLLOW) == 0 else { return }
        Self.remove(name, in: directory, device: st.st_dev, depth: 0)
    }

    /// `name` is the entry's bytes as the directory holds them (NUL-terminated), UTF-8 or not.
    private static func remove(_ name: [CChar], in directory: FileDescriptor, device: dev_t, depth: Int) {
        var st = stat()
        guard fstatat(directory.rawValue, name, &st, AT_SYMLINK_NOFOLLOW) == 0, st.st_dev == device else { return }
        guard st.st_mode & S_IFMT == S_IFDIR, let child = try? directory.openDirectory(name) else {
            unlinkat(directory.rawValue, name, 0)
            return
        }
        if depth < maxRemovalDepth, (try? child.status())?.st_dev == device {
            for entry in entries(of: child) { remove(entry, in: child, device: device, depth: depth + 1) }
        }
        unlinkat(directory.rawValue, name, AT_REMOVEDIR)
    }

    /// The names in `directory` (NUL-terminated bytes), without "." and "..".
    private static func entries(of directory: FileDescriptor) -> [[CChar]] {
        let copy = dup(directory.rawValue)
        guard copy >= 0 else { return [] }
        guard let stream = fdopendir(copy) else {
            close(copy)
            return []
        }
        defer { closedir(stream) }
        var names: [[CChar]] = []
        while let entry = readdir(stream) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                raw.prefix { $0 != 0 }.map { CChar(bitPattern: $0) } + [0]
            }
            if name != [46, 0] && name != [46, 46, 0] { names.append(name) }  // "." and ".."
        }
        return names
    }
}
