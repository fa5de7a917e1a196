extension Duration {
    /// A short form for logs and listings: `850µs`, `12.5ms`, `1.004s`, `26s`, `4m10s`, `3h2m`, `2d4h`
    /// (`Duration`'s own description prints `1.0037019974876997 seconds`).
    public var readable: String {
        let seconds = self.seconds
        let sign = seconds < 0 ? "-" : ""
        let value = abs(seconds)
        func trimmed(_ number: Double, digits: Int) -> String {
            var text = String(number.rounded(toPlaces: digits))
            if text.hasSuffix(".0") { text.removeLast(2) }
            return text
        }
        let body: String
        switch value {
        case 0: body = "0s"
        case ..<0.001: body = trimmed(value * 1e6, digits: 0) + "µs"
        case ..<1: body = trimmed(value * 1e3, digits: 1) + "ms"
        case ..<60: body = trimmed(value, digits: 3) + "s"
        default:
            let whole = Int(value.rounded())
            let (days, hours, minutes, rest) = (whole / 86_400, whole % 86_400 / 3600, whole % 3600 / 60, whole % 60)
            body =
                days > 0 ? "\(days)d" + (hours > 0 ? "\(hours)h" : "")
                : hours > 0 ? "\(hours)h" + (minutes > 0 ? "\(minutes)m" : "")
                : "\(minutes)m" + (rest > 0 ? "\(rest)s" : "")
        }
        return sign + body
    }
}

extension Double {
    fileprivate func rounded(toPlaces places: Int) -> Double {
        var scale = 1.0
        for _ in 0..<places { scale *= 10 }
        return (self * scale).rounded() / scale
    }
}
