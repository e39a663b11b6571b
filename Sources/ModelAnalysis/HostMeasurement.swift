import CKernels
import Foundation

/// Measures this machine and describes it as a hardware profile: FMA peak, the
/// executor's own convolution (GEMM) rate and its library sgemm rate (oneDNN or OpenBLAS),
/// streaming (triad) bandwidth, cache sizes from sysfs. The profile's float32 peak
/// is the faster of the two GEMM rates (what convolutions can attain here); the
/// FMA peak is kept beside it.
public enum HostMeasurement {
    public static func measure(threads: Int = 1, progress: (String) -> Void = { _ in }) -> HardwareProfile {
        progress("measuring FMA peak")
        var isa: UnsafePointer<CChar>?
        let fma = mlk_fma_peak_gflops(1.0, &isa)
        progress("measuring the library sgemm (1024^3, \(threads) thread(s))")
        let blas = mlk_sgemm_gflops(1024, 5, Int32(threads))
        progress("measuring the executor's convolution GEMM (1024^3, \(threads) thread(s))")
        let own = mlk_conv_gflops(1024, 5, Int32(threads))
        let gemm = max(blas, own)
        progress("measuring streaming bandwidth (3 x 256 MB triad)")
        let triad = mlk_triad_gbps(256 << 20, 5)
        progress("measuring weights streamed by a batch-1 product (256 MB)")
        let weights = weightStream(threads: threads)
        progress("measuring the working set streams stay in cache for")
        let (streaming, cacheRate) = streamingCache(dram: triad)
        let caches = cacheSizes()
        let isaName = isa.map { String(cString: $0) } ?? "?"
        let cpu = cpuName()
        let date = ISO8601DateFormatter().string(from: Date())
        var profile = HardwareProfile(
            id: "host-measured", name: "\(cpu) (measured, \(threads) thread(s))", kind: "cpu",
            peakFlopsPerSecond: ["float32": gemm * 1e9, "float32-fma": fma * 1e9],
            dramBytesPerSecond: triad * 1e9,
            caches: caches,
            launchOverheadSeconds: 1e-6,
            sources: [
                "streamingCacheBytes": String(format: "measured %@: the triad working set (3 arrays, 6 MB to 192 MB) where its rate crosses half way from memory's %.1f GB/s to the cache's %.1f GB/s (interpolated between the sizes measured)", date, triad, cacheRate),
                "peakFlopsPerSecond": String(format: "measured %@: the executor's convolution GEMM 1024^3 %.1f GFLOP/s, library sgemm (oneDNN or OpenBLAS) 1024^3 %.1f GFLOP/s, on %d thread(s) (the faster used as float32 peak); %@ FMA chains %.1f GFLOP/s per core", date, own, blas, threads, isaName, fma),
                "dramBytesPerSecond": String(format: "measured %@: triad a = b + s*c over 256 MB arrays, one thread, %.1f GB/s", date, triad),
                "weightStreamBytesPerSecond": String(format: "measured %@: x W^T at batch 1 over 256 MB of weights, %d thread(s), %.1f GB/s", date, threads, (weights ?? 0) / 1e9),
                "caches": "/sys/devices/system/cpu/cpu0/cache",
                "launchOverheadSeconds": "estimate: per-layer dispatch on a CPU",
            ])
        profile.streamingCacheBytes = streaming
        profile.weightStreamBytesPerSecond = weights.map { [String(threads): $0] }
        return profile
    }

    /// Bytes per second a batch-1 product on `threads` threads reads weights at when they stream
    /// from memory (256 MB of them, the best of 4 calls); nil if the memory was not to be had.
    public static func weightStream(threads: Int) -> Double? {
        let gbps = mlk_weight_stream_gbps(256 << 20, 4, Int32(threads))
        return gbps > 0 ? gbps * 1e9 : nil
    }

    /// The working set (bytes) up to which a triad stays nearer the cache's bandwidth than
    /// memory's, and that cache bandwidth (GB/s): working sets of 3 arrays of 2, 3, 4, 6, ... 64 MB.
    /// A model whose weights exceed it reads them from memory on every run, whatever the last-level
    /// cache's listed size (a 244 MB classifier under a shared 260 MB L3 was predicted at 0.69 of
    /// its time). The crossing of the half-way rate is interpolated (in log size) between the last
    /// working set above it and the first below, each the best of 7 runs: taken as the last size
    /// above, from the best of 3, it moved a step (18.9 and 12.6 MB) between two calibrations in a
    /// row on a 2-vCPU slice of a 32 MB L3, and with it every model whose weights are near it;
    /// four calibrations now gave 20.0-22.1 MB there.
    static func streamingCache(dram: Double) -> (bytes: Int, gbps: Double) {
        let cache = mlk_triad_gbps(2 << 20, 5)
        let half = (cache + dram) / 2
        var bytes = 0
        var last = (size: 0.0, rate: cache)
        for mb in [2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64] {
            let size = Double(3 * (mb << 20))
            let rate = mb == 2 ? cache : mlk_triad_gbps(mb << 20, 7)
            guard rate >= half else {
                if last.size > 0, last.rate > rate {
                    let f = (last.rate - half) / (last.rate - rate)
                    bytes = Int(exp(log(last.size) + f * (log(size) - log(last.size))))
                }
                break
            }
            bytes = Int(size)
            last = (size, rate)
        }
        return (bytes, cache)
    }

    static func cacheSizes() -> [HardwareProfile.Cache] {
        let base = "/sys/devices/system/cpu/cpu0/cache"
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: base))?.filter { $0.hasPrefix("index") }.sorted() ?? []
        var out: [HardwareProfile.Cache] = []
        for e in entries {
            func read(_ f: String) -> String { ((try? String(contentsOfFile: "\(base)/\(e)/\(f)", encoding: .utf8)) ?? "").trimmingCharacters(in: .whitespacesAndNewlines) }
            let type = read("type")
            guard type != "Instruction", let level = Int(read("level")) else { continue }
            let sizeText = read("size")
            var bytes = Int(sizeText.filter(\.isNumber)) ?? 0
            if sizeText.hasSuffix("K") { bytes *= 1024 } else if sizeText.hasSuffix("M") { bytes *= 1024 * 1024 }
            let shared = read("shared_cpu_list")
            let perCore = !(shared.contains(",") || shared.contains("-"))
            out.append(.init(level: "L\(level)", bytes: bytes, perCore: level < 3 ? perCore : false, cores: nil))
        }
        return out
    }

    static func cpuName() -> String {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let line = info.split(separator: "\n").first { $0.hasPrefix("model name") }
        return line.map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "this host"
    }
}
