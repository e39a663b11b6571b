/// The QDQ patterns that run as one integer op (QLinearConv, QLinearAdd, QGemm), matched as
/// onnxruntime's QDQ transformer matches them, so that a QDQ model computes what onnxruntime's
/// default session computes.
extension FusionPlan {
    /// DequantizeLinear -> Conv -> QuantizeLinear with constant 8-bit weights, per-tensor
    /// activation parameters, and an int32 bias dequantized with x_scale * w_scale: `quantizedConv`;
    /// two DequantizeLinear -> Add -> QuantizeLinear, one 8-bit type throughout: `quantizedAdd`;
    /// DequantizeLinear -> Gemm (int8 weights, int32 bias) with or without a QuantizeLinear after:
    /// `quantizedGemm`. A Relu before the QuantizeLinear goes with it where quantizing clamps as it would.
    static func findQuantizedOps(_ graph: Graph, _ constants: Constants, _ readers: Readers, _ plan: inout FusionPlan) {
        func producer(_ v: ValueID?, _ op: String) -> Node? {
            guard let v, let p = graph.values[v].producer, graph.nodes[p].op.rawValue == op, graph.nodes[p].outputs.count == 1,
                  (graph.nodes[p].int("block_size") ?? 0) == 0 else { return nil }
            return graph.nodes[p]
        }
        func slot(_ n: Node, _ k: Int) -> ValueID? { k < n.inputs.count ? n.inputs[k] : nil }
        func count(_ v: ValueID?) -> Int? { v.flatMap(constants.type).map { $0.shape.reduce(1, *) } }
        /// One constant float scale and one 8-bit zero point.
        func perTensor(_ n: Node) -> Bool {
            guard let s = slot(n, 1), let st = constants.type(s), st.dtype == .float32, st.shape.reduce(1, *) == 1,
                  let z = slot(n, 2), let zt = constants.type(z), [DType.int8, .uint8].contains(zt.dtype), zt.shape.reduce(1, *) == 1 else { return false }
            return true
        }
        /// The QuantizeLinear that alone reads `out` (per tensor, its output no graph output), or
        /// that alone reads a Relu alone reading `out` where its zero point is the type's lowest
        /// value: the Relu then changes nothing the quantization keeps (onnxruntime's
        /// ReluQuantFusion), and runs inside the fused op.
        func quantizer(_ out: ValueID) -> (q: Int, relu: Int?)? {
            func reader(_ v: ValueID) -> Int? {
                guard let qi = readers.sole(v), graph.nodes[qi].op.rawValue == "QuantizeLinear", graph.nodes[qi].inputs.first == v,
                      perTensor(graph.nodes[qi]), let o = graph.nodes[qi].outputs.first, !readers.outputs.contains(o) else { return nil }
                return qi
            }
            if let qi = reader(out) { return (qi, nil) }
            guard let r = readers.sole(out), graph.nodes[r].op.rawValue == "Relu", graph.nodes[r].inputs.first == out,
                  graph.nodes[r].outputs.count == 1, let qi = reader(graph.nodes[r].outputs[0]),
                  let z = slot(graph.nodes[qi], 2), let zt = constants.type(z), let zero = constants.floats(z)?.first,
                  zero == (zt.dtype == .int8 ? -128 : 0) else { return nil }
            return (qi, r)
        }
        for (i, conv) in graph.nodes.enumerated() where conv.op == .conv && conv.fusedActivation == nil && plan.fusedInto[i] == nil
            && plan.batchNorm[i] == nil && plan.activation[i] == nil && conv.dataLayout != .nhwc && conv.outputs.count == 1 {
            let out = conv.outputs[0]
            guard conv.inputs.count >= 2, let dx = producer(conv.inputs[0], "DequantizeLinear"), perTensor(dx),
                  let dw = producer(conv.inputs[1], "DequantizeLinear"), let wq = slot(dw, 0), let wt = constants.type(wq),
                  wt.dtype == .int8, wt.shape.count == 4, let ws = slot(dw, 1), let wsCount = count(ws), wsCount == 1 || wsCount == wt.shape[0],
                  let (qi, relu) = quantizer(out) else { continue }
            if wsCount > 1, let axis = dw.int("axis"), axis != 0 { continue }
            var bias: ValueID? = nil
            if let bv = slot(conv, 2) {
                // The bias as onnxruntime's quantizer writes it: int32, scale x_scale * w_scale.
                guard let db = producer(bv, "DequantizeLinear"), let bq = slot(db, 0), let bt = constants.type(bq), bt.dtype == .int32,
                      bt.shape.reduce(1, *) == wt.shape[0], let bs = slot(db, 1).flatMap(constants.floats),
                      let xs = slot(dx, 1).flatMap(constants.floats)?.first, let wsv = constants.floats(ws) else { continue }
                if let bz = slot(db, 2), constants.floats(bz)?.allSatisfy({ $0 == 0 }) != true { continue }
                let agrees = (0..<wt.shape[0]).allSatisfy { o in
                    let want = xs * wsv[wsv.count == 1 ? 0 : o], have = bs[bs.count == 1 ? 0 : o]
                    return abs(have - want) <= 1e-6 * abs(want)
                }
                guard agrees else { continue }
                bias = bq
                if readers.sole(bv) == i { plan.fusedInto[graph.values[bv].producer!] = i }
            }
            plan.quantizedConv[i] = [slot(dx, 0), slot(dx, 1), slot(dx, 2), wq, ws, slot(dw, 2),
                                     slot(graph.nodes[qi], 1), slot(graph.nodes[qi], 2), bias]
            plan.fusedInto[qi] = i
            if let relu { plan.fusedInto[relu] = i }
            for v in [conv.inputs[0], conv.inputs[1]] where readers.sole(v!) == i { plan.fusedInto[graph.values[v!].producer!] = i }
        }
        for (i, add) in graph.nodes.enumerated() where add.op.rawValue == "Add" && add.fusedActivation == nil && plan.fusedInto[i] == nil
            && add.inputs.count == 2 && add.outputs.count == 1 {
            let out = add.outputs[0]
            guard let da = producer(add.inputs[0], "DequantizeLinear"), perTensor(da), let db = producer(add.inputs[1], "DequantizeLinear"), perTensor(db),
                  let (qi, relu) = quantizer(out),
                  let za = slot(da, 2).flatMap(constants.type), let zb = slot(db, 2).flatMap(constants.type),
                  let zy = slot(graph.nodes[qi], 2).flatMap(constants.type), za.dtype == zb.dtype, zb.dtype == zy.dtype else { continue }
            plan.quantizedAdd[i] = [slot(da, 0), slot(da, 1), slot(da, 2), slot(db, 0), slot(db, 1), slot(db, 2),
                                    slot(graph.nodes[qi], 1), slot(graph.nodes[qi], 2)]
            plan.fusedInto[qi] = i
            if let relu { plan.fusedInto[relu] = i }
            for v in Set([add.inputs[0]!, add.inputs[1]!]) where readers.sole(v) == i { plan.fusedInto[graph.values[v].producer!] = i }
        }
        for (i, gemm) in graph.nodes.enumerated() where gemm.op.rawValue == "Gemm" && plan.fusedInto[i] == nil && gemm.outputs.count == 1
            && (gemm.int("transA") ?? 0) == 0 && (gemm.float("beta") ?? 1) == 1 && gemm.inputs.count >= 2 {
            let transB = (gemm.int("transB") ?? 0) != 0
            guard let dx = producer(gemm.inputs[0], "DequantizeLinear"), perTensor(dx),
                  let dw = producer(gemm.inputs[1], "DequantizeLinear"), let wq = slot(dw, 0), let wt = constants.type(wq),
                  wt.dtype == .int8, wt.shape.count == 2, let ws = slot(dw, 1), let wsCount = count(ws) else { continue }
            let cols = transB ? wt.shape[0] : wt.shape[1]
            guard wsCount == 1 || wsCount == cols else { continue }
            if wsCount > 1, (dw.int("axis") ?? 1) != (transB ? 0 : 1) { continue }
            var bias: ValueID? = nil
            if let bv = slot(gemm, 2) {
                guard let db = producer(bv, "DequantizeLinear"), let bq = slot(db, 0), let bt = constants.type(bq), bt.dtype == .int32,
                      bt.shape.reduce(1, *) == cols, let bs = slot(db, 1).flatMap(constants.floats),
                      let xs = slot(dx, 1).flatMap(constants.floats)?.first, let wsv = constants.floats(ws) else { continue }
                if let bz = slot(db, 2), constants.floats(bz)?.allSatisfy({ $0 == 0 }) != true { continue }
                guard (0..<cols).allSatisfy({ o in
                    let want = xs * wsv[wsv.count == 1 ? 0 : o], have = bs[bs.count == 1 ? 0 : o]
                    return abs(have - want) <= 1e-6 * abs(want)
                }) else { continue }
                bias = bq
                if readers.sole(bv) == i { plan.fusedInto[graph.values[bv].producer!] = i }
            }
            var inputs: [ValueID?] = [slot(dx, 0), slot(dx, 1), slot(dx, 2), wq, ws, slot(dw, 2), bias, nil, nil]
            let out = gemm.outputs[0]
            if let (qi, relu) = quantizer(out) {
                inputs[7] = slot(graph.nodes[qi], 1)
                inputs[8] = slot(graph.nodes[qi], 2)
                plan.fusedInto[qi] = i
                if let relu { plan.fusedInto[relu] = i }
            }
            plan.quantizedGemm[i] = inputs
            for v in Set([gemm.inputs[0]!, gemm.inputs[1]!]) where readers.sole(v) == i { plan.fusedInto[graph.values[v].producer!] = i }
        }
    }
}
