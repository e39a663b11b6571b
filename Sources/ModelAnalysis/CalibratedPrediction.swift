import ModelIR

extension ModelAnalyzer {
    /// Replaces the roofline with a calibrated profile's kernel models: each kernel's time is its
    /// class's (or a wider class's) fitted cost plus the measured dispatch cost per kernel; when
    /// the model's weights and largest working set exceed the last-level cache (the DRAM model's
    /// rule), its weights stream from DRAM at no better than the measured bandwidth, whatever the
    /// calibration networks (small, cache-resident) saw. Kernels of a class with no model keep
    /// the roofline and are tagged so; returns how many.
    static func predictCalibrated(_ nodes: inout [NodeAnalysis], _ kernels: [KernelStep], _ features: [KernelFeatures],
                                  models: [String: KernelCostModel], profile: HardwareProfile) -> Int {
        let dispatch = models[KernelCostModel.dispatchClass]?.coefficients["call"] ?? 0
        let totalWeights = nodes.reduce(0) { $0 + $1.weightBytes }
        let largestWorkingSet = nodes.map { $0.bytesRead + $0.bytesWritten - $0.weightBytes }.max() ?? 0
        let weightsStream = totalWeights + largestWorkingSet > profile.lastLevelCacheBytes
        var roofline = 0
        for (step, f) in zip(kernels, features) {
            guard let m = f.model(in: models) else {
                if nodes[step.node].predictedSeconds > 0 { roofline += 1; nodes[step.node].tags.append("roofline") }
                continue
            }
            var t = m.seconds(f) + dispatch
            if weightsStream { t += Double(f.weightBytes) * max(0, 1 / profile.dramBytesPerSecond - (m.coefficients["weightBytes"] ?? 0)) }
            nodes[step.node].predictedSeconds = t
        }
        return roofline
    }
}
