#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// The system's wall clock, for absolute expiries shared with other processes (a Redis
/// server's `PEXPIREAT`, a token's `exp`): the one source of "now" of the services.
public enum WallClock {
    /// Now, in milliseconds since the Unix epoch.
    public static func epochMilliseconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1000 + Int64(time.tv_nsec) / 1_000_000
    }

    /// Now, in whole seconds since the Unix epoch (a token's `iat`, a key's publication).
    public static func epochSeconds() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec)
    }
}
