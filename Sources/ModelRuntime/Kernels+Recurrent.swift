import CKernels
import Foundation
import ModelIR

/// ONNX RNN / GRU / LSTM (forward, reverse or bidirectional; layout 0 or 1), float32.
/// Gates follow the ONNX definitions: LSTM i, o, f, c with optional peepholes; GRU z, r, h with
/// linear_before_reset; RNN a single gate. Default activations only (sigmoid, tanh).
func recurrentKernel(_ kind: String) -> KernelFactory {
    { pc in
        let n = pc.node
        if let acts = n.attributes["activations"]?.strings {
            let defaults: [String] = kind == "LSTM" ? ["Sigmoid", "Tanh", "Tanh"] : kind == "GRU" ? ["Sigmoid", "Tanh"] : ["Tanh"]
            let dirs = (n.string("direction") ?? "forward") == "bidirectional" ? 2 : 1
            guard acts == Array(repeating: defaults, count: dirs).flatMap({ $0 }) else { throw pc.fail("activations \(acts)") }
        }
        if n.float("clip") != nil { throw pc.fail("clip") }
        if (n.int("input_forget") ?? 0) != 0 { throw pc.fail("input_forget") }
        let direction = n.string("direction") ?? "forward"
        let layout = n.int("layout") ?? 0
        let gates = kind == "LSTM" ? 4 : kind == "GRU" ? 3 : 1
        let linearBeforeReset = (n.int("linear_before_reset") ?? 0) != 0
        return { ins, ctx in
            func input(_ i: Int) -> RTensor? { i < ins.count ? ins[i] : nil }
            guard let x0 = input(0), let w = input(1), let r = input(2), x0.dtype == .float32, w.shape.count == 3, r.shape.count == 3 else {
                throw RuntimeError.unsupported(op: n.sourceOp, node: n.label, reason: "inputs")
            }
            let x = layout == 0 ? x0 : try permute3(x0, [1, 0, 2], ctx)        // -> [seq, batch, input]
            let seq = x.shape[0], batch = x.shape[1], inSize = x.shape[2]
            let dirs = w.shape[0], hidden = r.shape[2]
            guard w.shape[1] == gates * hidden, w.shape[2] == inSize, dirs == (direction == "bidirectional" ? 2 : 1) else {
                throw RuntimeError.invalid(node: n.label, reason: "weights \(w.shape) for \(gates) gates of \(hidden)")
            }
            let b = input(3), seqLens = input(4)?.integers(), h0 = input(5), c0 = kind == "LSTM" ? input(6) : nil, peep = kind == "LSTM" ? input(7) : nil
            let Y = try ctx.alloc([seq, dirs, batch, hidden], .float32)
            let Yh = try ctx.alloc([dirs, batch, hidden], .float32)
            let Yc = try ctx.alloc([dirs, batch, hidden], .float32)
            for i in 0..<Y.count { Y.floats[i] = 0 }
            func sigmoid(_ v: Float) -> Float { 1 / (1 + exp(-v)) }
            for d in 0..<dirs {
                let reverse = direction == "reverse" || d == 1
                var h = (0..<(batch * hidden)).map { h0?.floats[d * batch * hidden + $0] ?? 0 }
                var c = (0..<(batch * hidden)).map { c0?.floats[d * batch * hidden + $0] ?? 0 }
                let wd = w.floats + d * gates * hidden * inSize, rd = r.floats + d * gates * hidden * hidden
                for bi in 0..<batch {
                    let len = min(seqLens.map { $0[bi] } ?? seq, seq)
                    for step in 0..<len {
                        let t = reverse ? len - 1 - step : step
                        let xt = x.floats + (t * batch + bi) * inSize
                        // Pre-activations: W x + R h + Wb + Rb, per gate.
                        var pre = [Float](repeating: 0, count: gates * hidden)
                        var rh = [Float](repeating: 0, count: gates * hidden)
                        for gi in 0..<(gates * hidden) {
                            var s: Float = 0
                            for k in 0..<inSize { s += wd[gi * inSize + k] * xt[k] }
                            var q: Float = 0
                            for k in 0..<hidden { q += rd[gi * hidden + k] * h[bi * hidden + k] }
                            if let b {
                                s += b.floats[d * 2 * gates * hidden + gi]
                                q += b.floats[d * 2 * gates * hidden + gates * hidden + gi]
                            }
                            pre[gi] = s; rh[gi] = q
                        }
                        // GRU without linear_before_reset: the candidate reads R_h (r * h).
                        var resetH = [Float]()
                        if kind == "GRU" && !linearBeforeReset {
                            resetH = (0..<hidden).map { k in sigmoid(pre[hidden + k] + rh[hidden + k]) * h[bi * hidden + k] }
                        }
                        var pending = [Float](repeating: 0, count: kind == "GRU" ? hidden : 0)
                        for j in 0..<hidden {
                            let idx = bi * hidden + j
                            switch kind {
                            case "LSTM":
                                let p = peep.map { $0.floats + d * 3 * hidden }
                                let ig = sigmoid(pre[j] + rh[j] + (p?[j] ?? 0) * c[idx])
                                let fg = sigmoid(pre[2 * hidden + j] + rh[2 * hidden + j] + (p?[2 * hidden + j] ?? 0) * c[idx])
                                let cg = tanh(pre[3 * hidden + j] + rh[3 * hidden + j])
                                c[idx] = fg * c[idx] + ig * cg
                                let og = sigmoid(pre[hidden + j] + rh[hidden + j] + (p?[hidden + j] ?? 0) * c[idx])
                                h[idx] = og * tanh(c[idx])
                            case "GRU":
                                let z = sigmoid(pre[j] + rh[j])
                                let rg = sigmoid(pre[hidden + j] + rh[hidden + j])
                                let hh: Float
                                if linearBeforeReset {
                                    hh = tanh(pre[2 * hidden + j] + rg * rh[2 * hidden + j])
                                } else {
                                    var q: Float = 0
                                    for k in 0..<hidden { q += rd[(2 * hidden + j) * hidden + k] * resetH[k] }
                                    if let b { q += b.floats[d * 2 * gates * hidden + gates * hidden + 2 * hidden + j] }
                                    hh = tanh(pre[2 * hidden + j] + q)
                                }
                                pending[j] = (1 - z) * hh + z * h[idx]
                            default:
                                h[idx] = tanh(pre[j] + rh[j])
                            }
                        }
                        if kind == "GRU" { for j in 0..<hidden { h[bi * hidden + j] = pending[j] } }
                        for j in 0..<hidden { Y.floats[((t * dirs + d) * batch + bi) * hidden + j] = h[bi * hidden + j] }
                    }
                }
                for i in 0..<(batch * hidden) { Yh.floats[d * batch * hidden + i] = h[i]; Yc.floats[d * batch * hidden + i] = c[i] }
            }
            var yOut = Y, yhOut = Yh, ycOut = Yc
            if layout != 0 {
                yOut = try permute4(Y, [2, 0, 1, 3], ctx)      // [batch, seq, dirs, hidden]
                yhOut = try permute3(Yh, [1, 0, 2], ctx)
                ycOut = try permute3(Yc, [1, 0, 2], ctx)
            }
            return Array([yOut, yhOut, ycOut].prefix(n.outputs.count))
        }
    }
}

func permute3(_ x: RTensor, _ perm: [Int], _ ctx: RunContext) throws -> RTensor {
    let shape = perm.map { x.shape[$0] }
    let y = try ctx.alloc(shape, x.dtype)
    x.shape.map { CLong($0) }.withUnsafeBufferPointer { sh in
        perm.map { Int32($0) }.withUnsafeBufferPointer { p in mlk_transpose(x.raw, y.raw, 3, sh.baseAddress, p.baseAddress, Int32(x.elementSize)) }
    }
    return y
}

let recurrentKernels: [(String, KernelFactory)] = [("LSTM", recurrentKernel("LSTM")), ("GRU", recurrentKernel("GRU")), ("RNN", recurrentKernel("RNN"))]
