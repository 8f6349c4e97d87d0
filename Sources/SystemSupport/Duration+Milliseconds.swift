// A Duration as fractional milliseconds, for logs and latency metrics.

extension Duration {
    /// The duration in milliseconds, with its fraction (attoseconds are 1e-18 s).
    public var milliseconds: Double {
        Double(components.seconds) * 1000 + Double(components.attoseconds) / 1e15
    }
}
