import Foundation

/// The standard Prometheus process metrics of this process, read from `/proc` at each
/// scrape: `process_cpu_seconds_total`, `process_resident_memory_bytes`,
/// `process_open_fds`, `process_start_time_seconds`. Lines whose source cannot be read
/// (another OS) are left out.
enum ProcessMetrics {
    static func exposition() -> String {
        var text = ""
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        if let fields = statFields(), fields.count > 19, ticks > 0 {
            // Fields after the command name: state is index 0, utime 11, stime 12, starttime 19.
            if let user = Double(fields[11]), let system = Double(fields[12]) {
                text += "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total \((user + system) / ticks)\n"
            }
            if let start = Double(fields[19]), let boot = bootTime() {
                text += "# TYPE process_start_time_seconds gauge\nprocess_start_time_seconds \(boot + start / ticks)\n"
            }
        }
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
            let pages = statm.split(separator: " ").dropFirst().first.flatMap({ Double($0) })
        {
            text += "# TYPE process_resident_memory_bytes gauge\nprocess_resident_memory_bytes \(pages * Double(sysconf(Int32(_SC_PAGESIZE))))\n"
        }
        if let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            text += "# TYPE process_open_fds gauge\nprocess_open_fds \(descriptors.count)\n"
        }
        return text
    }

    /// `/proc/self/stat` after the parenthesised command name (which may hold spaces).
    private static func statFields() -> [Substring]? {
        guard let stat = try? String(contentsOfFile: "/proc/self/stat", encoding: .utf8),
            let close = stat.lastIndex(of: ")")
        else { return nil }
        return stat[stat.index(after: close)...].split(separator: " ")
    }

    /// The system's boot time in epoch seconds (`btime` of `/proc/stat`).
    private static func bootTime() -> Double? {
        guard let stat = try? String(contentsOfFile: "/proc/stat", encoding: .utf8) else { return nil }
        for line in stat.split(separator: "\n") where line.hasPrefix("btime ") {
            return Double(line.dropFirst(6).trimmingCharacters(in: .whitespaces))
        }
        return nil
    }
}
