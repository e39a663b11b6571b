// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "ModelLens",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "modellens", targets: ["modellens"]),
        .library(name: "ModelIR", targets: ["ModelIR"]),
        .library(name: "ModelImport", targets: ["ModelImport"]),
        .library(name: "ModelAnalysis", targets: ["ModelAnalysis"]),
        .library(name: "ModelRuntime", targets: ["ModelRuntime"]),
        .library(name: "ModelExport", targets: ["ModelExport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // protobuf-c code generated from Schemas/onnx.proto, and the file reader.
        .target(
            name: "CONNX",
            path: "Sources/CONNX",
            linkerSettings: [.linkedLibrary("protobuf-c")]
        ),
        // flatc C++ generated from Schemas/tflite.fbs behind a plain-C header.
        .target(
            name: "CTFLite",
            path: "Sources/CTFLite",
            exclude: ["tflite_generated.h"]
        ),
        // Compute kernels in C: host measurements, LAPACK singular values (OpenBLAS).
        .target(
            name: "CKernels",
            path: "Sources/CKernels",
            // Optimised in debug builds too: the tests run real models through these kernels.
            cSettings: [.unsafeFlags(["-O2"])],
            linkerSettings: [.linkedLibrary("dl"), .linkedLibrary("m")]
        ),
        // The format-neutral graph: types, ops and their shape rules, shape inference.
        .target(name: "ModelIR"),
        // ONNX and TFLite files -> ModelIR.
        .target(name: "ModelImport", dependencies: ["ModelIR", "CONNX", "CTFLite"]),
        // Costs, structure, hardware profiles (bundled JSON), roofline and DRAM estimates, reports.
        .target(name: "ModelAnalysis", dependencies: ["ModelIR", "CKernels"], resources: [.copy("Profiles")]),
        // The CPU executor: plan, buffer reuse, kernels per op family.
        .target(name: "ModelRuntime", dependencies: ["ModelIR", "CKernels"]),
        // Conformance: the ONNX backend node tests on the executor, and the op support matrix.
        .target(name: "ModelConformance", dependencies: ["ModelIR", "ModelImport", "ModelRuntime", "ModelExport"]),
        // IR -> ONNX (protobuf-c) and IR -> TFLite (flatbuffers) writers, and the converters between the two
        // (which fold constant subgraphs with the runtime's kernels).
        .target(name: "ModelExport", dependencies: ["ModelIR", "ModelImport", "ModelRuntime", "CONNX", "CTFLite"]),
        // `calibrate`: times benchmark networks on the executor and fits kernel cost models.
        .target(name: "ModelCalibration", dependencies: ["ModelIR", "ModelImport", "ModelAnalysis", "ModelRuntime", "ModelExport"]),
        // Model rewrites: width scaling (writes ONNX through protobuf-c).
        .target(name: "ModelTransform", dependencies: ["ModelIR", "ModelImport", "CONNX"]),
        // Compression: low-rank and CP splits, pruning, int8, IR -> IR (the writers write the result;
        // the executor measures the calibration ranges).
        .target(name: "ModelCompress", dependencies: ["ModelIR", "ModelRuntime", "CKernels"]),
        .executableTarget(
            name: "modellens",
            dependencies: [
                "ModelIR", "ModelImport", "ModelAnalysis", "ModelTransform", "ModelRuntime", "ModelConformance", "ModelExport",
                "ModelCalibration", "ModelCompress", "CKernels", .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // What the tests share: paths, reference data, running the CLI, seeded generators.
        .target(name: "ModelLensTestSupport", dependencies: ["ModelIR", "ModelImport"], path: "Tests/TestSupport"),
        // Tests grouped by the module they check (Import/, Analysis/, Runtime/, Export/, CLI/, Architecture/).
        .testTarget(
            name: "ModelLensTests",
            dependencies: ["ModelIR", "ModelImport", "ModelAnalysis", "ModelTransform", "ModelRuntime", "ModelConformance", "ModelExport", "ModelCalibration", "ModelCompress", "CONNX", "CKernels",
                           "ModelLensTestSupport"]
        ),
    ],
    swiftLanguageModes: [.v5],
    cxxLanguageStandard: .cxx17
)
