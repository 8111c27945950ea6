# fuzz.mk — builds the libFuzzer drivers (fuzz/README). GNU make.
#
# Run by `make fuzz` in the build directory, which passes what configure
# found: FUZZ_CC (clang), srcdir, DEP_CFLAGS and DEP_LIBS (llhttp, libevent,
# OpenSSL, libyaml), ZDM_SOURCES (the sources of libzdm.a), LLHTTP_SOURCES
# and LLHTTP_SRCDIR (when llhttp is built from its C sources), VERSION and
# WARN_CFLAGS. The project's sources are compiled again here, with clang,
# coverage instrumentation and ASan+UBSan, into fuzz/obj/; the drivers go
# to fuzz/fuzz_NAME. Nothing of the gcc build is used.

FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_CFLAGS = -std=c11 -g -O1 -fno-omit-frame-pointer $(FUZZ_SAN)
FUZZ_CPPFLAGS = -D_GNU_SOURCE=1 -DZDM_VERSION='"$(VERSION)"' -I$(srcdir)/src -I$(srcdir)/fuzz \
	$(DEP_CFLAGS)

OBJ = fuzz/obj
DRIVERS = $(patsubst $(srcdir)/fuzz/%.c,fuzz/%,$(wildcard $(srcdir)/fuzz/fuzz_*.c))
LIB_OBJS = $(patsubst %.c,$(OBJ)/%.o,$(filter %.c,$(ZDM_SOURCES)) fuzz/common.c)
LLHTTP_OBJS = $(patsubst %.c,$(OBJ)/%.o,$(LLHTTP_SOURCES))
LIB = $(OBJ)/libzdm-fuzz.a

all: $(DRIVERS)

$(DRIVERS): fuzz/%: $(OBJ)/fuzz/%.o $(LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(LIB) $(DEP_LIBS)

$(LIB): $(LIB_OBJS) $(LLHTTP_OBJS)
	rm -f $@
	ar cr $@ $^

# llhttp's sources are found before ours (its http.c is not src/http1/http.c),
# and its generated code is not ours to warn about.
$(LLHTTP_OBJS): $(OBJ)/%.o: $(srcdir)/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) -I$(LLHTTP_SRCDIR) $(DEP_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -w \
		-MMD -MP -c -o $@ $<

$(OBJ)/%.o: $(srcdir)/%.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(WARN_CFLAGS) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link \
		-MMD -MP -c -o $@ $<

# the flags are in this file
$(LIB_OBJS) $(LLHTTP_OBJS) $(DRIVERS:fuzz/%=$(OBJ)/fuzz/%.o): $(srcdir)/fuzz/fuzz.mk

clean:
	rm -rf $(OBJ) $(DRIVERS)

.PHONY: all clean
.SECONDARY:

-include $(shell find $(OBJ) -name '*.d' 2>/dev/null)
