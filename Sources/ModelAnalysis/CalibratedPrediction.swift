import ModelIR

extension ModelAnalyzer {
    /// The part of the shorter of a kernel's compute and weight stream that does not run under
    /// the longer. Measured on ResNet50 at 1 thread (Xeon 6 model 207): its convolutions with 2.5-10
    /// MB of weights each took 0.96 ms more than their calibrated compute time, for 4.2 ms of
    /// weights at the streaming rate; fully hidden (0) AlexNet, VGG16 and the ResNets came out 2-8%
    /// under, fully exposed (1) 3-33% over.
    static let exposedOverlap = 0.25

    /// Replaces the roofline with a calibrated profile's kernel models: each kernel's time is its
    /// class's (or a wider class's) fitted cost plus the measured dispatch cost. Where
    /// the model's weights and largest working set exceed the last-level cache (no more than the
    /// working set this host measurably keeps streaming at cache speed), its weights come from
    /// memory on every run: a run walks them in the same order each time, so the least recently
    /// used are the next needed, and a cache too small for all of them keeps next to none (AlexNet's
    /// three classifier layers, 151, 67 and 16 MB, all read at the measured memory rate). A kernel
    /// then takes no less than its weights' time at the rate a batch-1 product streams them
    /// (`weightStreamBytesPerSecond`, the triad's bandwidth in older profiles), and the shorter of
    /// the two, compute or stream, overlaps the longer but for `exposedOverlap` of it. The share
    /// from memory rises from 0 to 1 over the first half cache beyond the cache's size rather than
    /// at once, so that two calibrations that measured the cache a step apart do not disagree on a
    /// model near it by its whole weight traffic. Kernels of a class with no model keep the
    /// roofline and are tagged so; returns how many.
    static func predictCalibrated(_ nodes: inout [NodeAnalysis], _ kernels: [KernelStep], _ features: [KernelFeatures],
                                  models: [String: KernelCostModel], profile: HardwareProfile, threads: Int) -> Int {
        let dispatch = models[KernelCostModel.dispatchClass] ?? KernelCostModel(coefficients: [:], samples: 0, medianAbsError: 0)
        let totalWeights = nodes.reduce(0) { $0 + $1.weightBytes }
        let largestWorkingSet = nodes.map { $0.bytesRead + $0.bytesWritten - $0.weightBytes }.max() ?? 0
        let beyond = max(0, totalWeights + largestWorkingSet - profile.lastLevelCacheBytes)
        let fromMemory = min(1, Double(beyond) / max(1, Double(profile.lastLevelCacheBytes) / 2))
        let streamRate = profile.weightStreamBytesPerSecond?[String(threads)] ?? profile.dramBytesPerSecond
        var roofline = 0
        for (step, f) in zip(kernels, features) {
            guard let m = f.model(in: models) else {
                if nodes[step.node].predictedSeconds > 0 { roofline += 1; nodes[step.node].tags.append("roofline") }
                continue
            }
            var t = m.seconds(f)
            if fromMemory > 0 {
                let stream = fromMemory * Double(f.weightBytes) / streamRate
                t = max(t, stream) + exposedOverlap * min(t, stream)
            }
            nodes[step.node].predictedSeconds = dispatch.dispatched(t)
        }
        return roofline
    }
}
