SHELL := /bin/bash
# ngx_chat: build the dynamic module against Debian's nginx-dev kit, out of
# tree and inside this repository; run the suite; run a local server.
#
#   make            the module: build/release/ngx_chat_module.so
#   make asan       the same under AddressSanitizer and UBSan (build/asan)
#   make test       everything CI runs (see README.md)
#   make run        a local server with Postgres and Redis; make stop
#   make bench      the benchmark (bench/README.md)
#   make fuzz       each fuzz target for 20 s (fuzz/README.md)
#   make deb        the Debian package: .work/deb/libnginx-mod-http-chat_*.deb

KIT        ?= /usr/share/nginx/src
BUILD      := build
PYTHON     := /usr/bin/python3
SRC        := $(wildcard src/*.c src/*.h)

RELEASE_CC := -g -O2 -fstack-protector-strong -Wformat -Werror=format-security \
              -fPIC -D_FORTIFY_SOURCE=2
RELEASE_LD := -Wl,-z,relro -Wl,-z,now -fPIC
ASAN_CC    := -g -O1 -fno-omit-frame-pointer -fPIC \
              -fsanitize=address,undefined -fno-sanitize-recover=undefined
ASAN_LD    := -fPIC -fsanitize=address,undefined

.PRECIOUS: $(BUILD)/%/nginx/objs/Makefile

.PHONY: all module asan deps test unit lint fuzz run stop bench \
        deb clean

all: module

module: $(BUILD)/release/ngx_chat_module.so

asan: $(BUILD)/asan/ngx_chat_module.so

# configure once per variant; again when the list of sources changes
$(BUILD)/%/nginx/objs/Makefile: config
	rm -rf $(BUILD)/$*/nginx
	mkdir -p $(BUILD)/$*
	cp -r $(KIT) $(BUILD)/$*/nginx
	cd $(BUILD)/$*/nginx && . ./conf_flags && ./configure \
	    "$${NGX_CONF_FLAGS[@]}" --with-compat \
	    --with-cc-opt="$(if $(filter asan,$*),$(ASAN_CC),$(RELEASE_CC))" \
	    --with-ld-opt="$(if $(filter asan,$*),$(ASAN_LD),$(RELEASE_LD))" \
	    --add-dynamic-module=$(CURDIR) > ../configure.log 2>&1 \
	    || { cat ../configure.log; exit 1; }

# installed by rename: a running nginx keeps the file it mapped
$(BUILD)/%/ngx_chat_module.so: $(BUILD)/%/nginx/objs/Makefile $(SRC)
	$(MAKE) -s -C $(BUILD)/$*/nginx -f objs/Makefile modules
	cp $(BUILD)/$*/nginx/objs/ngx_chat_module.so $@.tmp
	mv -f $@.tmp $@

deps:
	scripts/deps

test: deps module asan
	scripts/test

unit: module
	$(MAKE) -s -C t/unit

lint:
	scripts/lint

fuzz: module
	$(MAKE) -C fuzz fuzz

run: deps module
	scripts/dev up

stop:
	scripts/dev down

bench: deps module
	bench/run

# the Debian package (debian/), built by dpkg-buildpackage in a copy of the
# sources under .work/deb/src, whose parent folder receives the .deb; the
# results are moved to .work/deb/
DEB        := .work/deb
DEB_SRC    := $(DEB)/src/ngx-chat
DEB_FILES  := config src sql conf.examples web debian README.md

deb:
	rm -rf $(DEB)
	mkdir -p $(DEB_SRC)
	cp -r $(DEB_FILES) $(DEB_SRC)/
	cd $(DEB_SRC) && DEB_BUILD_OPTIONS="parallel=$$(nproc)" \
	    dpkg-buildpackage -b -us -uc > $(CURDIR)/$(DEB)/build.log 2>&1 \
	    || { tail -50 $(CURDIR)/$(DEB)/build.log; exit 1; }
	mv $(DEB)/src/*.deb $(DEB)/src/*.buildinfo $(DEB)/src/*.changes $(DEB)/
	@ls $(DEB)/*.deb

clean:
	rm -rf $(BUILD) $(DEB)
