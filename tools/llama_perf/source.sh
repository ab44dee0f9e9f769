# Sourced by tools/llama_perf/run.sh and tools/llama_cross/build.sh: unpacks the llama.cpp
# source vendored in the llama-cpp-python sdist into $WORK/llama.cpp (once) and sets SRC.
# Needs SDIST and WORK; the sdist is the one the references were made with.
mkdir -p "$WORK"
SRC="$WORK/llama.cpp"
if [ ! -d "$SRC" ]; then
    tar -xzf "$SDIST" -C "$WORK"
    mv "$WORK"/llama_cpp_python-*/vendor/llama.cpp "$SRC"
fi
