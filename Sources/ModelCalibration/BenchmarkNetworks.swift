import Foundation
import ModelIR

/// The networks `calibrate` times: chains of the layers real vision models are made of
/// (inverted residual blocks, 3x3 and strided convolutions, stems, pooling, a classifier head,
/// the common activations and data movement), each at one width and resolution of a designed
/// sample. Every kernel of every network is one sample of its class, timed where it sits in a
/// network (layouts, fusion and caches as in a real model), not alone.
///
/// The networks are ONNX graphs; `calibrate` writes them to files and imports them as a user's
/// model would be (and converts them to TFLite for the NHWC kernels).
public struct BenchmarkNetwork {
    public var name: String
    public var model: Model
}

public enum BenchmarkNetworks {
    static let opset = 17

    /// One point of the design: channels, resolution and the expansion of the inverted residual.
    public struct Point: Sendable, Equatable {
        public var channels: Int
        public var resolution: Int
        public var expansion: Int
    }

    /// A sample of (channels, resolution) that covers what mobile and server CNNs use, from
    /// wide-and-small to narrow-and-large, with the work per network bounded so that no one
    /// network dominates the time. `quick` takes every third point.
    public static func design(quick: Bool) -> [Point] {
        let widths = [8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512]
        let resolutions = [4, 7, 14, 28, 56, 112, 224]
        var points: [Point] = []
        var k = 0
        for r in resolutions {
            for c in widths {
                // 3x3 C->C at R: 9 C^2 R^2 MACs; keep each network under about 0.6 GMAC.
                let macs = 9 * c * c * r * r
                guard macs <= 600_000_000, c * r * r >= 2048 else { continue }
                let e = [1, 4, 6][k % 3]
                k += 1
                points.append(Point(channels: c, resolution: r, expansion: e))
            }
        }
        return quick ? points.enumerated().filter { $0.offset % 3 == 0 }.map(\.element) : points
    }

    /// The network of one design point (NCHW, batch 1). `forTFLite` leaves out what TFLite has no
    /// builtin for (grouped convolution).
    public static func network(_ p: Point, seed: UInt64, forTFLite: Bool = false) -> BenchmarkNetwork {
        var b = GraphBuilder(seed: seed)
        let c = p.channels, r = p.resolution, e = max(1, p.expansion) * c
        // Stem on an image-like input: 3 channels at twice the resolution, strided.
        let image = b.input("image", [1, 3, 2 * r, 2 * r])
        let stem = b.conv(image, 3, c, k: 3, stride: 2, act: "Relu")
        // ResNet's, GoogLeNet's and DenseNet's stem: 7x7, stride 2 (the 3x3 above is MobileNet's;
        // one class fitted on 3x3 stems alone put GoogLeNet's at 1.29x and MobileNetV2's at
        // 0.89x), and the max pool after it unpadded, as GoogLeNet, SqueezeNet and AlexNet pool.
        let stem7 = b.pool("MaxPool", b.conv(image, 3, c, k: 7, stride: 2, act: "Relu"), k: 3, stride: 2, pad: 0)
        // Inverted residual: expand, depthwise, project, residual add.
        let expanded = b.conv(stem, c, e, k: 1, act: "Clip")
        let dw = b.conv(expanded, e, e, k: 3, group: e, act: "Clip")
        let projected = b.conv(dw, e, c, k: 1)
        let block = b.binary("Add", projected, stem)
        // A plain 3x3 layer, then a strided 3x3 that doubles the channels, and a 5x5 depthwise.
        let plain = b.conv(block, c, c, k: 3, act: "Relu")
        let down = b.conv(plain, c, 2 * c, k: 3, stride: 2, act: "Relu")
        let dw5 = b.conv(plain, c, c, k: 5, stride: 2, group: c)
        // The other depthwise windows mobile models use: 3x3 stride 2 (MobileNets' downsampling)
        // and 5x5 stride 1 (MnasNet, EfficientNet).
        let dw3s2 = b.conv(block, c, c, k: 3, stride: 2, group: c, act: "Clip")
        let dw5s1 = b.conv(block, c, c, k: 5, group: c, act: "Clip")
        // A 7x7 depthwise (ConvNeXt) and a grouped 3x3 with groups of 8 or 16 channels (RegNet, ResNeXt).
        let dw7 = b.conv(block, c, c, k: 7, group: c)
        // GELU written out, as torch exports it below opset 20 (ConvNeXt, transformers); TFLite
        // has no Erf.
        let act7 = forTFLite ? dw7 : b.gelu(dw7)
        let grouped = c >= 16 && !forTFLite ? b.conv(act7, c, c, k: 3, group: c / (c >= 64 ? 16 : 8), act: "Relu") : act7
        // ConvNeXt's pointwise layers: Linear over the pixels of NHWC activations (a MatMul of a
        // stack by one matrix).
        let pixels = forTFLite ? nil : b.linear(b.transpose(act7, [0, 2, 3, 1]), 2 * c)
        // ShuffleNet's channel shuffle: reshape to two groups, swap them with the channels, reshape back.
        // and its channel split, a Slice of whole planes.
        let shuffled = c % 2 == 0 ? b.channelShuffle(grouped) : grouped
        let half = b.channels(shuffled, c / 2, c)
        // Activations and arithmetic a fused kernel does not absorb.
        let sig = b.unary("Sigmoid", down)
        let swish = b.binary("Mul", down, sig)
        let hs = b.unary("HardSwish", swish)
        let th = b.unary("Tanh", dw5)
        // Data movement and pooling; a DenseNet-style pre-activation (BatchNorm, ReLU, then a
        // 1x1 conv) and PReLU as mediapipe's models use it.
        let cat = b.concat([hs, th], axis: 1)
        let bn = b.batchNorm(cat)
        let pre = b.conv(b.unary("Relu", bn), 3 * c, c, k: 1)
        let pr = b.prelu(pre)
        let avg = b.pool("AveragePool", pr, k: 2, stride: 2, pad: 0)
        // Squeeze-excitation: a per-channel scale, broadcast over the plane.
        let se = b.binary("Mul", b.unary("Sigmoid", b.globalPool(pr)), pr)
        // Hard-sigmoid written out with scalar constants, as exporters often leave it.
        let gate = b.binary("Div", b.binary("Add", avg, b.scalar(3)), b.scalar(6))
        let gated = b.binary("Mul", avg, gate)
        // Two same-shape results added (no convolution to take the sum in), and a scalar added,
        // on the small pooled activations and on larger ones (the loops' cost per element differs
        // with where the operands sit).
        let summed = b.binary("Add", gated, avg)
        let thSum = b.binary("Add", th, b.binary("Add", th, b.scalar(3)))
        let pooled = b.pool("MaxPool", cat, k: 3, stride: 2)
        // Inception's branch pools (3x3, stride 1) and GoogLeNet's 2x2 stride 2 run other loops
        // than ResNet's 3x3 stride-2 max pool above.
        let branchMax = b.pool("MaxPool", pr, k: 3, stride: 1)
        let branchAvg = b.pool("AveragePool", pr, k: 3, stride: 1)
        let halved = b.pool("MaxPool", cat, k: 2, stride: 2, pad: 0)
        let transposed = b.transpose(cat, [0, 1, 3, 2])
        let cropped = b.crop(transposed, 1)
        let up = b.resize(pooled, linear: true)
        // Feature-pyramid upsampling (detectors, PP-OCR's text detector): nearest, twice the size.
        let upNearest = b.resize(th, linear: false)
        // Classifier head.
        let gap = b.globalPool(cat)
        let flat = b.flatten(gap)
        let logits = b.gemm(flat, 3 * c, 1000)
        let soft = b.softmax(logits)
        // The expansion and the classifier pruned to 10-30% nonzero weights, the sparse kernels'
        // classes; last, so that their outputs evict nothing a later kernel reads (with the
        // pruned expansion in the middle, one study run predicted its models a median 2.6% over;
        // with it last, 0.5% under, in a noisier run: not conclusive, but no kernel after it).
        let pruned = b.conv(stem, c, e, k: 1, act: "Clip", density: [0.1, 0.2, 0.3][(c / 8 + r) % 3])
        let prunedLogits = b.gemm(flat, 3 * c, 1000, density: [0.1, 0.2, 0.3][(c / 8 + r + 1) % 3])
        // A QDQ inverted residual and a 3x3 layer (onnxruntime.quantization's form), which run on
        // the integer kernels, 8-bit channels-last between them: their classes. ONNX only (the
        // networks' TFLite conversions are float).
        var integer: [ValueID] = []
        if !forTFLite {
            let q = b.quantize(stem)
            let qe = b.qdqConv(q, c, e, k: 1)
            let qd = b.qdqConv(qe, e, e, k: 3, group: e)
            let qp = b.qdqConv(qd, e, c, k: 1)
            let q3 = b.qdqConv(qp, c, c, k: 3, stride: 2)
            integer = [b.dequantize(q3)]
        }
        b.outputs([soft, cropped, up, upNearest, dw3s2, dw5s1, summed, thSum, se, shuffled, half, branchMax, branchAvg, halved, pruned, prunedLogits, stem7]
                  + (pixels.map { [$0] } ?? []) + integer)
        let graph = b.graph
        let model = Model(format: Model.Format(rawValue: "onnx"), path: "calibration-\(c)x\(r)", fileSize: 0, graph: graph)
        model.opsets = ["": BenchmarkNetworks.opset]
        return BenchmarkNetwork(name: "c\(c)-r\(r)-e\(p.expansion)", model: model)
    }
}

/// Builds an NCHW float graph with known shapes and seeded random weights.
struct GraphBuilder {
    let graph = Graph(name: "calibration")
    var state: UInt64
    var count = 0

    init(seed: UInt64) { state = seed }

    mutating func random() -> Float {
        state = state &* 6364136223846793005 &+ 1442695040888963407
        return Float(state >> 40) / Float(1 << 24) - 0.5
    }

    mutating func name(_ prefix: String) -> String {
        count += 1
        return "\(prefix)_\(count)"
    }

    func shape(_ v: ValueID) -> [Int] { graph.values[v].type.shape.dims?.compactMap(\.value) ?? [] }

    mutating func value(_ prefix: String, _ shape: [Int], _ dtype: DType = .float32) -> ValueID {
        graph.addValue(name: name(prefix), type: TensorType(dtype: dtype, shape: Shape(known: shape)))
    }

    mutating func input(_ n: String, _ shape: [Int]) -> ValueID {
        let v = graph.addValue(name: n, type: TensorType(dtype: .float32, shape: Shape(known: shape)))
        graph.inputs.append(v)
        return v
    }

    /// x / sqrt(2) -> Erf -> + 1 -> * x -> * 0.5: GELU as torch writes it out.
    mutating func gelu(_ x: ValueID) -> ValueID {
        let e = unary("Erf", binary("Div", x, scalar(Float(2).squareRoot())))
        return binary("Mul", binary("Mul", x, binary("Add", e, scalar(1))), scalar(0.5))
    }

    mutating func constant(_ shape: [Int], scale: Float) -> ValueID {
        let n = shape.reduce(1, *)
        var bytes = [UInt8](repeating: 0, count: n * 4)
        bytes.withUnsafeMutableBytes { raw in
            let f = raw.bindMemory(to: Float.self)
            for i in 0..<n { f[i] = random() * scale }
        }
        return constant(TensorData(dtype: .float32, shape: shape, storage: .owned(bytes)))
    }

    mutating func constant(_ data: TensorData) -> ValueID {
        let v = graph.addValue(name: name("w"), type: TensorType(dtype: data.dtype, shape: Shape(known: data.shape)))
        graph.values[v].constant = data
        return v
    }

    mutating func int64s(_ values: [Int]) -> ValueID {
        var bytes = [UInt8]()
        for x in values { withUnsafeBytes(of: Int64(x).littleEndian) { bytes += $0 } }
        return constant(TensorData(dtype: .int64, shape: [values.count], storage: .owned(bytes)))
    }

    mutating func floats(_ values: [Float], shape: [Int]? = nil) -> ValueID {
        var bytes = [UInt8]()
        for x in values { withUnsafeBytes(of: x.bitPattern.littleEndian) { bytes += $0 } }
        return constant(TensorData(dtype: .float32, shape: shape ?? [values.count], storage: .owned(bytes)))
    }

    mutating func scalar(_ x: Float) -> ValueID { floats([x], shape: []) }

    @discardableResult
    mutating func node(_ op: String, _ inputs: [ValueID?], _ outShape: [Int], _ attributes: [String: Attribute] = [:]) -> ValueID {
        let out = value(op.lowercased(), outShape)
        // The network's opset: the writer leaves out what equals that opset's defaults (at opset 0,
        // a nearest Resize's asymmetric coordinates, which opset 17 reads back as half_pixel).
        graph.nodes.append(Node(name: name(op), op: OpKind(op), sourceOp: op, version: BenchmarkNetworks.opset, inputs: inputs,
                                outputs: [out], attributes: attributes))
        return out
    }

    /// A convolution with "same" padding and a bias, then an optional activation node
    /// ("Relu", or "Clip" to [0, 6]); `density`: the share of weights left nonzero.
    mutating func conv(_ x: ValueID, _ cin: Int, _ cout: Int, k: Int, stride: Int = 1, group: Int = 1, act: String? = nil,
                       density: Double? = nil) -> ValueID {
        let s = shape(x)
        let oh = (s[2] + 2 * (k / 2) - k) / stride + 1, ow = (s[3] + 2 * (k / 2) - k) / stride + 1
        var w = constant([cout, cin / group, k, k], scale: 2 / Float(max(1, cin / group * k * k)).squareRoot())
        if let density, let c = graph.values[w].constant, var f = c.doubles(limit: .max) {
            // Pruned weights: this share nonzero, scattered at random (magnitude pruning's zeros
            // follow no pattern either).
            for i in f.indices where Double(random() + 0.5) >= density { f[i] = 0 }
            w = floats(f.map(Float.init), shape: c.shape)
        }
        let bias = constant([cout], scale: 0.1)
        var y = node("Conv", [x, w, bias], [s[0], cout, oh, ow],
                     ["kernel_shape": .ints([k, k]), "strides": .ints([stride, stride]), "pads": .ints([k / 2, k / 2, k / 2, k / 2]),
                      "group": .int(group), "dilations": .ints([1, 1])])
        switch act {
        case "Relu": y = unary("Relu", y)
        case "Clip": y = node("Clip", [y, scalar(0), scalar(6)], shape(y))
        default: break
        }
        return y
    }

    /// The activation scale and zero point of the QDQ layers: values of about [-3, 3] in uint8.
    mutating func activationQuantization() -> (scale: ValueID, zero: ValueID) {
        (scalar(6 / 255), constant(TensorData(dtype: .uint8, shape: [], storage: .owned([128]))))
    }

    /// x quantized to uint8 (QuantizeLinear).
    mutating func quantize(_ x: ValueID) -> ValueID {
        let (s, z) = activationQuantization()
        let out = value("quantized", shape(x), .uint8)
        graph.nodes.append(Node(name: name("QuantizeLinear"), op: OpKind("QuantizeLinear"), sourceOp: "QuantizeLinear",
                                version: BenchmarkNetworks.opset, inputs: [x, s, z], outputs: [out]))
        return out
    }

    /// uint8 x dequantized to float (DequantizeLinear).
    mutating func dequantize(_ x: ValueID, scale: ValueID? = nil, zero: ValueID? = nil, axis: Int? = nil) -> ValueID {
        let (s, z) = scale.map { ($0, zero!) } ?? activationQuantization()
        var t = graph.values[x].type.shape.dims?.compactMap(\.value) ?? []
        if t.isEmpty { t = shape(x) }
        return node("DequantizeLinear", [x, s, z], t, axis.map { ["axis": .int($0)] } ?? [:])
    }

    /// A convolution in onnxruntime.quantization's QDQ form, from and to uint8: DequantizeLinear
    /// of x, of int8 weights (one scale per output channel) and of an int32 bias, the Conv, a
    /// QuantizeLinear of its output.
    mutating func qdqConv(_ x: ValueID, _ cin: Int, _ cout: Int, k: Int, stride: Int = 1, group: Int = 1) -> ValueID {
        let s = shape(x)
        let oh = (s[2] + 2 * (k / 2) - k) / stride + 1, ow = (s[3] + 2 * (k / 2) - k) / stride + 1
        let wn = cout * (cin / group) * k * k
        let weights = (0..<wn).map { _ in UInt8(bitPattern: Int8(clamping: Int((random() * 254).rounded()))) }
        let w = constant(TensorData(dtype: .int8, shape: [cout, cin / group, k, k], storage: .owned(weights)))
        let wScale = 2 / Float(max(1, cin / group * k * k)).squareRoot() / 127
        let ws = floats([Float](repeating: wScale, count: cout))
        let wz = constant(TensorData(dtype: .int8, shape: [cout], storage: .owned([UInt8](repeating: 0, count: cout))))
        let xs: Float = 6 / 255
        var biasBytes = [UInt8]()
        for _ in 0..<cout { withUnsafeBytes(of: Int32((random() * 2000).rounded()).littleEndian) { biasBytes += $0 } }
        let bq = constant(TensorData(dtype: .int32, shape: [cout], storage: .owned(biasBytes)))
        let bs = floats([Float](repeating: xs * wScale, count: cout))
        let bz = constant(TensorData(dtype: .int32, shape: [cout], storage: .owned([UInt8](repeating: 0, count: 4 * cout))))
        let y = node("Conv", [dequantize(x), dequantize(w, scale: ws, zero: wz, axis: 0), dequantize(bq, scale: bs, zero: bz, axis: 0)],
                     [s[0], cout, oh, ow],
                     ["kernel_shape": .ints([k, k]), "strides": .ints([stride, stride]), "pads": .ints([k / 2, k / 2, k / 2, k / 2]),
                      "group": .int(group), "dilations": .ints([1, 1])])
        return quantize(y)
    }

    mutating func unary(_ op: String, _ x: ValueID) -> ValueID { node(op, [x], shape(x)) }
    /// A binary op; the output takes the larger operand's shape (a scalar or a per-channel
    /// operand broadcasts over it).
    mutating func binary(_ op: String, _ a: ValueID, _ b: ValueID) -> ValueID {
        let sa = shape(a), sb = shape(b)
        return node(op, [a, b], sa.reduce(1, *) >= sb.reduce(1, *) ? sa : sb)
    }

    mutating func concat(_ xs: [ValueID], axis: Int) -> ValueID {
        var s = shape(xs[0])
        s[axis] = xs.reduce(0) { $0 + shape($1)[axis] }
        return node("Concat", xs, s, ["axis": .int(axis)])
    }

    mutating func pool(_ op: String, _ x: ValueID, k: Int, stride: Int, pad: Int? = nil) -> ValueID {
        let s = shape(x)
        let p = pad ?? k / 2
        let oh = (s[2] + 2 * p - k) / stride + 1, ow = (s[3] + 2 * p - k) / stride + 1
        return node(op, [x], [s[0], s[1], oh, ow], ["kernel_shape": .ints([k, k]), "strides": .ints([stride, stride]), "pads": .ints([p, p, p, p])])
    }

    /// Inference BatchNormalization with per-channel statistics (not folded: no conv before it).
    mutating func batchNorm(_ x: ValueID) -> ValueID {
        let c = shape(x)[1]
        let scale = constant([c], scale: 1), bias = constant([c], scale: 0.1), mean = constant([c], scale: 0.1)
        let variance = floats([Float](repeating: 1, count: c))
        return node("BatchNormalization", [x, scale, bias, mean, variance], shape(x), ["epsilon": .float(1e-5)])
    }

    /// PReLU with one slope per channel.
    mutating func prelu(_ x: ValueID) -> ValueID {
        let c = shape(x)[1]
        return node("PRelu", [x, constant([c, 1, 1], scale: 0.5)], shape(x))
    }

    mutating func globalPool(_ x: ValueID) -> ValueID {
        let s = shape(x)
        return node("GlobalAveragePool", [x], [s[0], s[1], 1, 1])
    }

    mutating func transpose(_ x: ValueID, _ perm: [Int]) -> ValueID {
        let s = shape(x)
        return node("Transpose", [x], perm.map { s[$0] }, ["perm": .ints(perm)])
    }

    /// Channels [from, to) of an NCHW tensor (ShuffleNetV2's channel split): whole planes copied.
    mutating func channels(_ x: ValueID, _ from: Int, _ to: Int) -> ValueID {
        let s = shape(x)
        return node("Slice", [x, int64s([from]), int64s([to]), int64s([1])], [s[0], to - from, s[2], s[3]])
    }

    /// Drops `p` rows and columns at each border.
    mutating func crop(_ x: ValueID, _ p: Int) -> ValueID {
        let s = shape(x)
        return node("Slice", [x, int64s([p, p]), int64s([s[2] - p, s[3] - p]), int64s([2, 3])], [s[0], s[1], s[2] - 2 * p, s[3] - 2 * p])
    }

    mutating func resize(_ x: ValueID, linear: Bool) -> ValueID {
        let s = shape(x)
        let scales = floats([1, 1, 2, 2])
        return node("Resize", [x, nil, scales], [s[0], s[1], 2 * s[2], 2 * s[3]],
                    ["mode": .string(linear ? "linear" : "nearest"), "coordinate_transformation_mode": .string(linear ? "half_pixel" : "asymmetric"),
                     "nearest_mode": .string("floor")])
    }

    mutating func channelShuffle(_ x: ValueID) -> ValueID {
        let s = shape(x)
        let five = [s[0], 2, s[1] / 2, s[2], s[3]]
        let r = node("Reshape", [x, int64s(five)], five)
        let t = node("Transpose", [r], [s[0], s[1] / 2, 2, s[2], s[3]], ["perm": .ints([0, 2, 1, 3, 4])])
        return node("Reshape", [t, int64s(s)], s)
    }

    mutating func flatten(_ x: ValueID) -> ValueID {
        let s = shape(x)
        return node("Flatten", [x], [s[0], s.dropFirst().reduce(1, *)], ["axis": .int(1)])
    }

    mutating func gemm(_ x: ValueID, _ k: Int, _ n: Int, density: Double? = nil) -> ValueID {
        var w = constant([n, k], scale: 1 / Float(k).squareRoot())
        if let density, let c = graph.values[w].constant, var f = c.doubles(limit: .max) {
            for i in f.indices where Double(random() + 0.5) >= density { f[i] = 0 }
            w = floats(f.map(Float.init), shape: c.shape)
        }
        let bias = constant([n], scale: 0.1)
        return node("Gemm", [x, w, bias], [shape(x)[0], n], ["transB": .int(1)])
    }

    /// A Linear layer over every pixel of NHWC activations: [1, H, W, C] x [C, n] (ConvNeXt,
    /// transformers), one product of H * W rows.
    mutating func linear(_ x: ValueID, _ n: Int) -> ValueID {
        let s = shape(x)
        let w = constant([s[3], n], scale: 1 / Float(s[3]).squareRoot())
        return node("MatMul", [x, w], [s[0], s[1], s[2], n])
    }

    mutating func softmax(_ x: ValueID) -> ValueID { node("Softmax", [x], shape(x), ["axis": .int(-1)]) }

    mutating func outputs(_ vs: [ValueID]) { graph.outputs = vs }
}
