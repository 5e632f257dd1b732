import Foundation

/// A self-contained SVG: throughput (x) against p99 latency (y), one point per sweep step.
enum Chart {
    static func svg(_ results: [RunResult], title: String) -> String {
        let w = 720.0, h = 420.0, left = 80.0, bottom = 60.0, top = 50.0, right = 30.0
        let xs = results.map(\.opsPerSecond), ys = results.map { $0.ms(99) }
        let xMax = max(1, (xs.max() ?? 1) * 1.1), yMax = max(0.1, (ys.max() ?? 1) * 1.1)
        func px(_ x: Double) -> Double { left + x / xMax * (w - left - right) }
        func py(_ y: Double) -> Double { h - bottom - y / yMax * (h - bottom - top) }
        var s = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(w))\" height=\"\(Int(h))\" font-family=\"sans-serif\" font-size=\"12\">\n"
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += "<text x=\"\(w / 2)\" y=\"24\" text-anchor=\"middle\" font-size=\"15\">\(title)</text>\n"
        s += "<line x1=\"\(left)\" y1=\"\(h - bottom)\" x2=\"\(w - right)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
        s += "<line x1=\"\(left)\" y1=\"\(top)\" x2=\"\(left)\" y2=\"\(h - bottom)\" stroke=\"black\"/>\n"
        for i in 0...4 {
            let xv = xMax * Double(i) / 4, yv = yMax * Double(i) / 4
            s += "<text x=\"\(px(xv))\" y=\"\(h - bottom + 18)\" text-anchor=\"middle\">\(Int(xv))</text>\n"
            s += "<text x=\"\(left - 8)\" y=\"\(py(yv) + 4)\" text-anchor=\"end\">\(String(format: "%.1f", yv))</text>\n"
            s += "<line x1=\"\(left)\" y1=\"\(py(yv))\" x2=\"\(w - right)\" y2=\"\(py(yv))\" stroke=\"#eee\"/>\n"
        }
        s += "<text x=\"\((left + w - right) / 2)\" y=\"\(h - 15)\" text-anchor=\"middle\">throughput (ops/s)</text>\n"
        s += "<text x=\"20\" y=\"\((top + h - bottom) / 2)\" text-anchor=\"middle\" transform=\"rotate(-90 20 \((top + h - bottom) / 2))\">p99 latency (ms)</text>\n"
        let points = zip(xs, ys).map { "\(px($0.0)),\(py($0.1))" }.joined(separator: " ")
        s += "<polyline points=\"\(points)\" fill=\"none\" stroke=\"#2a6fdb\" stroke-width=\"2\"/>\n"
        for (r, (x, y)) in zip(results, zip(xs, ys)) {
            s += "<circle cx=\"\(px(x))\" cy=\"\(py(y))\" r=\"4\" fill=\"#2a6fdb\"/>\n"
            s += "<text x=\"\(px(x) + 6)\" y=\"\(py(y) - 6)\">\(r.spec.clients) clients</text>\n"
        }
        return s + "</svg>\n"
    }
}
