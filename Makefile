# The two commands that matter: `make demo` runs the product locally, `make test` runs every test.
.PHONY: demo test setup build sizes clean

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

clean:
	cargo clean
	rm -rf edge-worker/build www/pkg tests/artifacts .wrangler
