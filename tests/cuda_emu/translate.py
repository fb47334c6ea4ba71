"""Rewrites a .cu file's kernel launches for the cuda-emu tier, so that it compiles as C++:

    kernel<T><<<grid, block, smem, stream>>>(a, b)
 -> ::emu::launch(::emu::config(grid, block, smem, stream), "kernel<T> at file.cu:LINE",
                  [=](auto... emu_a) { kernel<T>(emu_a...); }, a, b)

Everything else is left as it is (tests/cuda_emu/include/cuda_runtime.h supplies the rest of the
language). The arguments are evaluated once, at the launch, as CUDA evaluates them; the generic
lambda lets a kernel template deduce its arguments as it does at a real launch. A #line directive
keeps compiler messages pointing at the original file.

    python3 translate.py IN.cu OUT.cpp
"""
import os
import sys


def match_forward(s, i, open_ch, close_ch):
    """Index just past the bracket that closes the one at s[i]."""
    depth = 0
    while i < len(s):
        if s[i] == open_ch:
            depth += 1
        elif s[i] == close_ch:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    raise SystemExit(f"translate: unbalanced {open_ch}{close_ch}")


def kernel_start(s, end):
    """Start of the kernel expression that ends just before s[end] (`name`, `ns::name<...>`)."""
    i = end
    while i > 0 and s[i - 1].isspace():
        i -= 1
    if i > 0 and s[i - 1] == ">":  # template arguments: walk back to their '<'
        depth = 0
        while i > 0:
            i -= 1
            if s[i] == ">":
                depth += 1
            elif s[i] == "<":
                depth -= 1
                if depth == 0:
                    break
    while i > 0 and (s[i - 1].isalnum() or s[i - 1] in "_:"):
        i -= 1
    return i


def declarators(decl):
    """The names a declaration statement declares: `double a[32], b[32]` -> [a, b]."""
    names, depth, last_ident = [], 0, None
    i = 0
    while i < len(decl):
        c = decl[i]
        if c in "[(<":
            if depth == 0 and last_ident and c == "[":
                names.append(last_ident)
                last_ident = None
            depth += 1
        elif c in "])>":
            depth -= 1
        elif depth == 0 and (c.isalpha() or c == "_"):
            j = i
            while j < len(decl) and (decl[j].isalnum() or decl[j] == "_"):
                j += 1
            last_ident = decl[i:j]
            i = j
            continue
        elif depth == 0 and c == ",":
            if last_ident:
                names.append(last_ident)
            last_ident = None
        i += 1
    if last_ident:
        names.append(last_ident)
    return list(dict.fromkeys(names))


def rewrite_all(src, marker, rewrite):
    """For each occurrence of marker, src[start:end] becomes text: (start, end, text) =
    rewrite(src, at)."""
    out, pos = [], 0
    while (at := src.find(marker, pos)) >= 0:
        start, end, text = rewrite(src, at)
        out += [src[pos:start], text]
        pos = end
    out.append(src[pos:])
    return "".join(out)


def mark_shared(src, at):
    """After a `__shared__ ...;` declaration, a call that fills the variables with the guard
    pattern when the first thread of a block reaches it, so a read before any write in the block
    reads NaNs rather than the previous block's values."""
    end = src.find(";", at) + 1
    names = declarators(src[at + len("__shared__"):end - 1].replace("__align__", " "))
    marks = "".join(f" ::emu::shared_fresh(&{n}, sizeof({n}));" for n in names)
    return at, end, src[at:end] + marks


def rewrite_launch(src, at, name):
    """`kernel<<<cfg>>>(args)` at `at` -> a call of the emulator (see the module's comment)."""
    start = kernel_start(src, at)
    kernel = src[start:at].strip()
    cfg_end = src.find(">>>", at)
    cfg = src[at + 3:cfg_end]
    p = cfg_end + 3
    while src[p].isspace():
        p += 1
    if src[p] != "(":
        raise SystemExit(f"translate: {name}: no argument list after >>> at offset {p}")
    args_end = match_forward(src, p, "(", ")")
    args = src[p + 1:args_end - 1].strip()
    lam = f"[=](auto... emu_a) {{ {kernel}(emu_a...); }}"
    where = f"{' '.join(kernel.split())} at {name}:{src.count(chr(10), 0, start) + 1}"
    call = (f"::emu::launch(::emu::config({cfg}), \"{where}\", {lam}"
            f"{', ' + args if args else ''})")
    # Keep the line count: the launch may span lines.
    call += "\n" * (src.count("\n", start, args_end) - call.count("\n"))
    return start, args_end, call


def translate(src, name):
    src = rewrite_all(src, "__shared__", mark_shared)
    return rewrite_all(src, "<<<", lambda s, at: rewrite_launch(s, at, name))


def main():
    src_path, out_path = sys.argv[1], sys.argv[2]
    with open(src_path) as f:
        src = f.read()
    with open(out_path, "w") as f:
        f.write(f'#line 1 "{src_path}"\n' + translate(src, os.path.basename(src_path)))


if __name__ == "__main__":
    main()
