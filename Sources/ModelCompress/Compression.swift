import Foundation
import ModelIR
import ModelRuntime

/// What `modellens compress` applies, in this order: channel pruning, low-rank splits of
/// fully-connected and 1x1 layers, CP splits of k x k convolutions, magnitude pruning (of the weights as they are after
/// the splits, factors included), then static int8 quantization. Each method visits the
/// layers with float32 constant weights whose node name matches `layers` (all when nil).
public struct CompressionOptions: Sendable {
    /// Fraction of each prunable convolution's filters removed, with the readers' channels (0 ..< 1).
    public var pruneChannels: Double?
    /// Fraction of each layer's weights set to zero, smallest magnitudes first (0 ..< 1).
    public var prune: Double?
    /// Rank of the two factors fully-connected layers and 1x1 convolutions are split into.
    public var lowRank: Int?
    /// Or the smallest rank whose singular values keep this share of the weight's energy
    /// (sum of squares), per layer (0 < E <= 1).
    public var lowRankEnergy: Double?
    /// Rank of the CP decomposition k x k convolutions are split by.
    public var cp: Int?
    /// Post-training quantization: "int8" (static: weights per channel, activations over the
    /// ranges the calibration inputs give them) or "fp16" (weights stored as half precision).
    public var quantize: String?
    /// A regular expression the node names of the layers to change must match (anywhere in
    /// the name).
    public var layers: String?

    public init(prune: Double? = nil, pruneChannels: Double? = nil, lowRank: Int? = nil, lowRankEnergy: Double? = nil, cp: Int? = nil,
                quantize: String? = nil, layers: String? = nil) {
        self.prune = prune
        self.pruneChannels = pruneChannels
        self.quantize = quantize
        self.cp = cp
        self.lowRank = lowRank
        self.lowRankEnergy = lowRankEnergy
        self.layers = layers
    }

    public var isEmpty: Bool { pruneChannels == nil && prune == nil && lowRank == nil && lowRankEnergy == nil && cp == nil && quantize == nil }
}

/// One layer a method changed, with its parameter count before and after.
public struct LayerChange: Sendable, Codable {
    public var layer: String
    public var op: String
    public var method: String
    /// What was done ("rank 64 of 512", "sparsity 0.50").
    public var detail: String
    public var parametersBefore: Int
    public var parametersAfter: Int
}

/// A layer a method was asked to change and left as it was, with the reason.
public struct LayerSkip: Sendable, Codable {
    public var layer: String
    public var op: String
    public var method: String
    public var reason: String
}

public struct CompressionLog: Sendable {
    public var changes: [LayerChange] = []
    public var skipped: [LayerSkip] = []
}

/// A request that cannot be carried out: the message names the layer and the allowed range.
public struct CompressionError: Error, CustomStringConvertible {
    public let description: String
    init(_ d: String) { description = d }
}

public enum Compressor {
    /// Rewrites `model.graph` in place; the caller writes it out. Throws before changing
    /// anything when the options are out of range.
    /// `calibration`: inputs for static quantization's ranges (by graph-input name).
    public static func apply(_ model: Model, _ options: CompressionOptions, calibration: [[String: RTensor]] = []) throws -> CompressionLog {
        if let s = options.prune, !(s >= 0 && s < 1) { throw CompressionError("--prune takes a sparsity in [0, 1), not \(s)") }
        if let s = options.pruneChannels, !(s > 0 && s < 1) { throw CompressionError("--prune-channels takes a share of filters in (0, 1), not \(s)") }
        if let r = options.lowRank, r < 1 { throw CompressionError("--lowrank takes a rank of at least 1, not \(r)") }
        if let e = options.lowRankEnergy, !(e > 0 && e <= 1) { throw CompressionError("--lowrank-energy takes a share of energy in (0, 1], not \(e)") }
        if let r = options.cp, r < 1 { throw CompressionError("--cp takes a rank of at least 1, not \(r)") }
        if let q = options.quantize {
            guard q == "int8" || q == "fp16" else { throw CompressionError("--quantize takes int8 or fp16, not '\(q)' (int8-dynamic is not written yet)") }
            guard q == "fp16" || !calibration.isEmpty else { throw CompressionError("--quantize int8 needs calibration inputs (--calibration DIR of .npy files)") }
        }
        if options.lowRank != nil && options.lowRankEnergy != nil { throw CompressionError("give --lowrank or --lowrank-energy, not both") }
        var filter: NSRegularExpression?
        if let pattern = options.layers {
            do { filter = try NSRegularExpression(pattern: pattern) } catch { throw CompressionError("--layers '\(pattern)' is not a regular expression: \(error.localizedDescription)") }
        }
        let selected: (Node) -> Bool = { node in
            guard let filter else { return true }
            return filter.firstMatch(in: node.name, range: NSRange(node.name.startIndex..., in: node.name)) != nil
        }
        var log = CompressionLog()
        if let s = options.pruneChannels {
            try ChannelPruning.apply(model.graph, ratio: s, explicit: filter != nil, selected: selected, log: &log)
        }
        if options.lowRank != nil || options.lowRankEnergy != nil {
            let rank: LowRankSplit.Rank = options.lowRank.map { .fixed($0) } ?? .energy(options.lowRankEnergy!)
            try LowRankSplit.apply(model, rank: rank, explicit: filter != nil, selected: selected, log: &log)
        }
        if let r = options.cp {
            try CPSplit.apply(model.graph, rank: r, explicit: filter != nil, selected: selected, log: &log)
        }
        if let s = options.prune {
            MagnitudePruning.apply(model.graph, sparsity: s, selected: selected, log: &log)
        }
        if options.quantize == "fp16" {
            try HalfPrecision.apply(model.graph, selected: selected, log: &log)
        } else if options.quantize != nil {
            let ranges = try StaticQuantization.ranges(model, feeds: calibration)
            try StaticQuantization.apply(model.graph, ranges: ranges, selected: selected, log: &log)
        }
        return log
    }

    /// The layers the methods act on: nodes whose second input is a constant weight.
    static func weight(of node: Node, in g: Graph) -> (id: ValueID, data: TensorData)? {
        guard node.inputs.count > 1, let w = node.inputs[1], let c = g.values[w].constant else { return nil }
        return (w, c)
    }

    static let layerOps: Set<String> = ["Conv", "Gemm", "MatMul", "FullyConnected", "ConvTranspose"]
}
