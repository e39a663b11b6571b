import ModelIR

extension ModelAnalyzer {
    /// Replaces the roofline with a calibrated profile's kernel models: each kernel's time is its
    /// class's (or a wider class's) fitted cost plus the measured dispatch cost per kernel. Where
    /// the model's weights and largest working set exceed the last-level cache (no more than the
    /// working set this host measurably keeps streaming at cache speed), the share of its weights
    /// beyond it comes from memory on every run, at no better than the measured bandwidth,
    /// whatever the calibration networks (small, cache-resident) saw. A share, not all or nothing:
    /// a model just over the cache keeps most of its weights there, and a threshold made two
    /// calibrations that measured the cache a step apart disagree by the whole weight traffic.
    /// Kernels of a class with no model keep the roofline and are tagged so; returns how many.
    static func predictCalibrated(_ nodes: inout [NodeAnalysis], _ kernels: [KernelStep], _ features: [KernelFeatures],
                                  models: [String: KernelCostModel], profile: HardwareProfile) -> Int {
        let dispatch = models[KernelCostModel.dispatchClass]?.coefficients["call"] ?? 0
        let totalWeights = nodes.reduce(0) { $0 + $1.weightBytes }
        let largestWorkingSet = nodes.map { $0.bytesRead + $0.bytesWritten - $0.weightBytes }.max() ?? 0
        let beyond = max(0, totalWeights + largestWorkingSet - profile.lastLevelCacheBytes)
        let fromMemory = totalWeights > 0 ? min(1, Double(beyond) / Double(totalWeights)) : 0
        var roofline = 0
        for (step, f) in zip(kernels, features) {
            guard let m = f.model(in: models) else {
                if nodes[step.node].predictedSeconds > 0 { roofline += 1; nodes[step.node].tags.append("roofline") }
                continue
            }
            var t = m.seconds(f) + dispatch
            if fromMemory > 0 { t += fromMemory * Double(f.weightBytes) * max(0, 1 / profile.dramBytesPerSecond - (m.coefficients["weightBytes"] ?? 0)) }
            nodes[step.node].predictedSeconds = t
        }
        return roofline
    }
}
