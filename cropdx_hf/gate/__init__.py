"""Is this photo a tomato, potato or pepper leaf at all? The leaf gate in front of every diagnosis.

`leaf_gate` is the runtime (load, score, decide), `network` the two networks it reads photos through (the
release's classifier and a generic ImageNet one), `fit` the code that learns it; inference never imports `fit`.
The ONNX export of the generic network is a release step (`cropdx_hf.release.gate_export`).
"""
