# flagon.mk: build a Flagon handler component from C. An app's Makefile sets four variables
# and includes this file:
#
#     SDK_DIR ?= ../../sdk/c      # this directory (flagon.h, flagon.c, tool/)
#     WIT_DIR ?= ../../wit        # the flagon:app WIT package
#     APP     := hello            # the component is $(BUILD_DIR)/$(APP).wasm
#     SRCS    := hello.c          # the app's C files
#     include $(SDK_DIR)/flagon.mk
#
# `make` then
#   1. builds the SDK's tool, flagon-c (Rust, pinned by tool/Cargo.lock), once;
#   2. generates wit-bindgen's C bindings of flagon:app/handler into $(BUILD_DIR)/bindings;
#   3. compiles the app, flagon.c and the bindings with clang for wasm32-wasi (WASI preview1,
#      reactor: no main, constructors run when the component is instantiated);
#   4. links them with wasm-ld, and
#   5. turns the module into a component with flagon-c (wit-component and wasmtime 48's
#      preview1 reactor adapter).
#
# Toolchain (Debian 12): apt-get install make clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32
# and Rust (cargo) for the tool. With wasi-sdk instead: make CC=/opt/wasi-sdk/bin/clang.
#
# Variables you may set (on the command line or in the app's Makefile): CC (default clang-19),
# OPT (default -Os), EXTRA_CFLAGS, EXTRA_LDFLAGS, BUILD_DIR (default build; the manifest's
# `source` must match), WASI_SYSROOT (a wasi-libc sysroot, if clang has none built in),
# WORLD (default flagon:app/handler), and FLAGON_C (a flagon-c binary to use instead of
# building tool/, e.g. one installed with `cargo install --locked --path sdk/c/tool`).

ifndef SDK_DIR
$(error set SDK_DIR to the Flagon C SDK directory (the one holding flagon.mk) before including flagon.mk)
endif
ifndef WIT_DIR
$(error set WIT_DIR to the flagon:app WIT directory before including flagon.mk)
endif
ifndef APP
$(error set APP to the component's name before including flagon.mk)
endif
ifndef SRCS
$(error set SRCS to the app's C files before including flagon.mk)
endif

# CC and BUILD_DIR come from the command line or the app's Makefile, never from the
# environment: a CC=gcc or BUILD_DIR exported for something else must not change this build.
ifneq ($(filter default environment,$(origin CC)),)
CC := clang-19
endif
ifneq ($(filter undefined environment,$(origin BUILD_DIR)),)
BUILD_DIR := build
endif
OPT ?= -Os
WORLD ?= flagon:app/handler

TARGET_FLAGS := --target=wasm32-wasi
ifdef WASI_SYSROOT
TARGET_FLAGS += --sysroot=$(WASI_SYSROOT)
endif

CFLAGS := $(TARGET_FLAGS) $(OPT) -std=c11 -Wall -Wextra -Wno-unused-parameter \
	-ffunction-sections -fdata-sections \
	-I$(SDK_DIR) -I$(BUILD_DIR)/bindings -MMD -MP $(EXTRA_CFLAGS)
# --gc-sections drops the bindings' wrappers the app never calls, and with them their imports:
# the component imports only the interfaces it uses, which is what the manifest must grant.
LDFLAGS := $(TARGET_FLAGS) -mexec-model=reactor -Wl,--gc-sections -Wl,--strip-debug $(EXTRA_LDFLAGS)

BINDINGS := $(BUILD_DIR)/bindings
OBJ_DIR := $(BUILD_DIR)/obj
APP_OBJS := $(patsubst %.c,$(OBJ_DIR)/app/%.o,$(SRCS))
SDK_OBJS := $(OBJ_DIR)/sdk/flagon.o $(OBJ_DIR)/sdk/handler.o
MODULE := $(BUILD_DIR)/$(APP).module.wasm
COMPONENT := $(BUILD_DIR)/$(APP).wasm
WIT_FILES := $(wildcard $(WIT_DIR)/*.wit)

# The tool: built once into tool/target (cargo does nothing when it is up to date).
ifdef FLAGON_C
FLAGON_C_DEP :=
else
FLAGON_C := $(SDK_DIR)/tool/target/release/flagon-c
FLAGON_C_DEP := $(FLAGON_C)
$(FLAGON_C): $(SDK_DIR)/tool/Cargo.toml $(SDK_DIR)/tool/Cargo.lock $(SDK_DIR)/tool/src/main.rs
	@command -v cargo >/dev/null 2>&1 || { echo "flagon.mk: cargo not found: install Rust (https://rustup.rs) to build the SDK's flagon-c tool, or set FLAGON_C" >&2; exit 1; }
	cargo build --release --locked --manifest-path $(SDK_DIR)/tool/Cargo.toml --target-dir $(SDK_DIR)/tool/target
	@touch $@
endif

.PHONY: all clean toolchain
.DEFAULT_GOAL := all
all: $(COMPONENT)

# Say what is missing before clang says something obscure.
toolchain:
	@command -v $(CC) >/dev/null 2>&1 || { echo "flagon.mk: $(CC) not found: apt-get install clang-19 lld-19 wasi-libc libclang-rt-19-dev-wasm32 (or set CC to a clang with a wasm32-wasi sysroot)" >&2; exit 1; }
	@echo 'int x;' | $(CC) $(TARGET_FLAGS) -x c -c -o /dev/null -include stdlib.h - 2>/dev/null || { echo "flagon.mk: $(CC) cannot compile for wasm32-wasi: apt-get install wasi-libc (or set WASI_SYSROOT)" >&2; exit 1; }
	@test -f "$$($(CC) $(TARGET_FLAGS) -print-libgcc-file-name)" || { echo "flagon.mk: no compiler runtime for wasm32 ($$($(CC) $(TARGET_FLAGS) -print-libgcc-file-name)): apt-get install libclang-rt-19-dev-wasm32" >&2; exit 1; }
	@test -x "$$($(CC) -print-prog-name=wasm-ld)" || command -v "$$($(CC) -print-prog-name=wasm-ld)" >/dev/null 2>&1 || { echo "flagon.mk: wasm-ld not found: apt-get install lld-19" >&2; exit 1; }

# Generated bindings: handler.h, handler.c and handler_component_type.o (the world's type).
$(BINDINGS)/handler.h: $(WIT_FILES) $(FLAGON_C_DEP)
	$(FLAGON_C) bindings --wit $(WIT_DIR) --world $(WORLD) --out $(BINDINGS)
$(BINDINGS)/handler.c $(BINDINGS)/handler_component_type.o: $(BINDINGS)/handler.h

$(OBJ_DIR)/app/%.o: %.c $(BINDINGS)/handler.h | toolchain
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(OBJ_DIR)/sdk/flagon.o: $(SDK_DIR)/flagon.c $(BINDINGS)/handler.h | toolchain
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# wit-bindgen's code is not ours to warn about.
$(OBJ_DIR)/sdk/handler.o: $(BINDINGS)/handler.c | toolchain
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -w -c $< -o $@

$(MODULE): $(APP_OBJS) $(SDK_OBJS) $(BINDINGS)/handler_component_type.o
	$(CC) $(LDFLAGS) -o $@ $^

$(COMPONENT): $(MODULE) $(FLAGON_C_DEP)
	$(FLAGON_C) componentize $(MODULE) --wit $(WIT_DIR) --world $(WORLD) -o $@

clean:
	rm -rf $(BUILD_DIR)

-include $(APP_OBJS:.o=.d) $(SDK_OBJS:.o=.d)
