"""Is this photo a tomato, potato or pepper leaf at all? The leaf gate in front of every diagnosis.

`leaf_gate` is the runtime (load, score, decide), `network` the generic ImageNet network it reads photos
through, `fit` the code that learns it; inference never imports `fit`.
"""
