import Glibc
import SystemSupport
import Testing

enum Token: UInt64 { case first = 1, second = 2 }

@Test func errnoDescribesItself() {
    #expect(Errno.noEntry.description.contains("No such file"))
    #expect(Errno(rawValue: ENOENT) == .noEntry)
}

@Test func readWholeFileOfMissingPathThrowsNoEntry() {
    #expect(throws: Errno.noEntry) { try readWholeFile("/nonexistent/kata-swift-test") }
}

@Test func eventFDCountsAndResets() throws {
    let e = try EventFD()
    #expect(try e.consume() == nil)
    try e.signal(2)
    try e.signal(3)
    #expect(try e.consume() == 5)
    #expect(try e.consume() == nil)
}

@Test func epollReportsTheReadyTokenOnly() throws {
    let epoll = try Epoll<Token>()
    let a = try EventFD()
    let b = try EventFD()
    try epoll.add(a.fd, events: .readable, token: .first)
    try epoll.add(b.fd, events: .readable, token: .second)
    #expect(try epoll.wait(timeoutMs: 0).isEmpty)
    try b.signal()
    let ready = try epoll.wait(timeoutMs: 1000)
    #expect(ready.count == 1)
    #expect(ready.first?.token == .second)
    #expect(ready.first?.events.contains(.readable) == true)
    try epoll.remove(b.fd)
    #expect(try epoll.wait(timeoutMs: 0).isEmpty)
}

@Test func fileDescriptorWritesAndReadsThroughAPipe() throws {
    var fds: [Int32] = [0, 0]
    #expect(pipe(&fds) == 0)
    let reader = FileDescriptor(owning: fds[0])
    let writer = FileDescriptor(owning: fds[1])
    try writer.writeAll(Array("hello".utf8))
    #expect(try reader.read(upTo: 16) == Array("hello".utf8))
}

@Test func eventManagerHandsEachReadyTokenToItsHandlerUntilStopped() throws {
    let manager = try EventManager<Token>()
    let a = try EventFD()
    let b = try EventFD()
    try manager.add(a.fd, token: .first)
    try manager.add(rawDescriptor: b.fd.rawValue, events: .readable, token: .second)
    try a.signal()
    try b.signal()
    var seen: [Token] = []
    var batches = 0
    try manager.run({ token, events in
        #expect(events.contains(.readable))
        seen.append(token)
        switch token {
        case .first: _ = try? a.consume()
        case .second: _ = try? b.consume()
        }
    }, afterBatch: {
        batches += 1
        manager.stop()  // from inside the loop: the next wait returns at once
    })
    #expect(Set(seen) == [.first, .second])
    #expect(batches == 1)
    // A removed descriptor is no longer reported; the stop stays set, so run returns at once.
    try manager.remove(a.fd)
    try a.signal()
    try manager.run { token, _ in Issue.record("\(token) after stop") }
}

@Test func eventManagerStopsFromAnotherThread() throws {
    let manager = try EventManager<Token>()
    let stopper = try WorkerThread(name: "stopper") {
        usleep(20_000)
        manager.stop()
    }
    try manager.run { token, _ in Issue.record("unexpected \(token)") }
    stopper.join()
}
