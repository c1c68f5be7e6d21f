"""The `cropdx` subcommands, one module each: `register` adds the command's options to the parser, `run` calls the
library and prints what it did. `cropdx_hf.cli` lists them and handles the errors.

Library modules are imported inside each `run`: `cropdx predict --onnx` must run where torch is not installed, and
`--help` should not pay for importing torch."""
