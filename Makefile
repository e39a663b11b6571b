# ModelLens — the two commands a newcomer needs:
#   make demo   set up the product (no test tools), then inspect, analyse, run, convert and
#               compress a real model and the samples
#   make test   set up, fetch the real models, write reference data, run every test
SWIFT ?= swift
MODELLENS = .build/debug/modellens

.PHONY: setup build demo models reference check-generated test bench clean

setup:
	@Tools/setup.sh

build:
	@Tools/setup.sh --build
	$(SWIFT) build

# The product only: Debian packages, the Swift build and one real model (mediapipe's pose
# detector, unpacked from its PyPI wheel); no Python environment.
DEMO_MODEL = .models/mediapipe/mediapipe__modules__pose_detection__pose_detection.tflite

demo: build
	@Tools/fetch-models.sh mediapipe
	$(MODELLENS) inspect $(DEMO_MODEL)
	@echo
	$(MODELLENS) analyze $(DEMO_MODEL) --top 8
	@echo
	$(MODELLENS) run $(DEMO_MODEL) --random --threads 1
	@echo
	$(MODELLENS) inspect SampleModels/tiny_cnn.onnx
	@echo
	$(MODELLENS) inspect SampleModels/tiny_cnn.tflite
	@echo
	$(MODELLENS) inspect SampleModels/tiny_cnn.onnx --input-shape input=8,3,32,32 --json
	@echo
	$(MODELLENS) analyze SampleModels/tiny_cnn.onnx --profile odroid-xu4-mali-t628
	@echo
	$(MODELLENS) run SampleModels/mobilenet_int8.tflite --random
	@echo
	$(MODELLENS) convert SampleModels/tiny_cnn.onnx .build/tiny_cnn_converted.tflite --verify
	@echo
	$(MODELLENS) compress SampleModels/tiny_cnn.onnx .build/tiny_cnn_compressed.onnx --cp 3 --prune 0.3 --verify --runs 3

models: setup
	@Tools/fetch-models.sh
	.venv/bin/python Tools/export-torchvision.py
	.venv/bin/python Tools/make-paper-models.py

reference: models
	.venv/bin/python Tools/make-reference.py
	.venv/bin/python Tools/make-run-references.py
	.venv/bin/python Tools/check-onnx-schema.py
	.venv/bin/python Tools/gen-onnx-operators.py --check
	.venv/bin/python Tools/check-tflite-schema.py

check-generated: setup
	Tools/regen-schemas.sh --check

test: check-generated reference
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build

bench: setup models
	$(SWIFT) build -c release --product modellens
	.venv/bin/python Tools/bench-import.py
	.venv/bin/python Tools/bench-analysis.py
	.venv/bin/python Tools/export-torchvision.py --study
	.venv/bin/python Tools/make-bench-models.py
	.venv/bin/python Tools/bench-runtime.py

clean:
	rm -rf .build .refdata
