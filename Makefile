# trueshot: the two commands from README.md (make demo, make test) and a few helpers.
#
#   make demo          setup, release build, turn samples/sample.jpg into headshots in out/
#   make test          setup --test, then the whole suite (tests/run_suite.sh)
#   make setup         Debian packages + pinned models and photos (scripts/setup.sh)
#   make build         release build in build/ (meson + ninja)
#   make clean         remove build/, build-asan/ and out/ (the download cache stays)
#   make format        clang-format -i every .c/.h file
#   make format-check  fail if any .c/.h file is not clang-formatted
#   make screenshots   the studio's screens in docs/screenshots/ (chromium; docs/testing-studio.md)

SHELL := /bin/bash
.DEFAULT_GOAL := demo

export TRUESHOT_CACHE ?= $(HOME)/.cache/trueshot

BUILD ?= build
CLANG_FORMAT ?= clang-format
FORMAT_DIRS := include src cli tests bench fuzz server tools
# every .c/.h under FORMAT_DIRS, NUL-separated, node_modules skipped
FIND_C = find $(wildcard $(FORMAT_DIRS)) -name node_modules -prune -o -type f \( -name '*.c' -o -name '*.h' \) -print0

.PHONY: demo test setup build clean format format-check

demo:
	@scripts/setup.sh
	@$(MAKE) --no-print-directory build
	@if [ ! -x $(BUILD)/cli/trueshot ]; then \
	    echo "make demo: $(BUILD)/cli/trueshot was not built (the CLI is not in the tree yet?)" >&2; exit 1; fi
	$(BUILD)/cli/trueshot make samples/sample.jpg -o out/

test:
	@scripts/setup.sh --test
	@tests/run_suite.sh

setup:
	@scripts/setup.sh

build:
	@if [ ! -f $(BUILD)/build.ninja ]; then \
	    rm -rf $(BUILD) && meson setup $(BUILD) --buildtype=release; fi
	ninja -C $(BUILD)

clean:
	rm -rf build build-asan out

format:
	@$(FIND_C) | xargs -0 -r $(CLANG_FORMAT) -i

format-check:
	@n=$$($(FIND_C) | tr -cd '\0' | wc -c); \
	if $(FIND_C) | xargs -0 -r $(CLANG_FORMAT) --dry-run --Werror; then \
	    echo "format-check: $$n file(s) formatted"; \
	else \
	    echo "format-check: files above need 'make format'" >&2; exit 1; fi

# Contact sheet of the person cut-outs of every development photo over dark and light grey
# (issue 4): docs/contact-sheet.jpg.
.PHONY: contact-sheet
contact-sheet: build
	$(BUILD)/bench/contact_sheet $(TRUESHOT_CACHE)/photos docs/contact-sheet.jpg

# Screenshots of the studio's main screens (issue 7): docs/screenshots/*.png, made by Debian's
# chromium driving a real `trueshot studio` (tests/studio/screenshots.mjs; docs/testing-studio.md).
.PHONY: screenshots
screenshots: build
	@scripts/setup.sh --test
	node tests/studio/screenshots.mjs docs/screenshots
