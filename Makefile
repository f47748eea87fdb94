# The two commands that matter: `make demo` runs the product locally, `make test` runs every test.
.PHONY: demo test setup build sizes bench clean

demo:
	bash scripts/demo

test:
	bash scripts/test

setup:
	bash scripts/setup --browser

build:
	bash scripts/build

sizes:
	bash scripts/sizes

# Every benchmark side by side with the alternatives, with the repo's Node: writes BENCHMARKS.md.
bench:
	bash -c 'source scripts/env.sh && node scripts/bench.mjs'

clean:
	cargo clean
	rm -rf edge-worker/build www/pkg tests/artifacts .wrangler
