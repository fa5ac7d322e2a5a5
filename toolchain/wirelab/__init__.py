"""wirelab: build, test and demo Envoy proxy-wasm network filters for database traffic."""

__version__ = "0.1.0"
