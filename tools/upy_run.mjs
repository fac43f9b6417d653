// node tools/upy_run.mjs [--heap BYTES] [--root DIR] [--lib DIR] [--stats FILE] [--headroom BYTES] SCRIPT.py
// Runs SCRIPT.py as __main__ in real MicroPython (the pinned WebAssembly build) with protocol/ and
// device/ importable from /lib.  Output bytes pass through unchanged; uncaught exception: traceback
// on stderr, exit 1; SystemExit(n): exit n; harness failure: exit 2.  `#upy:collect` lines split the
// script into parts: only between parts (back in JS) does this port really collect garbage.  --heap
// is only the *initial* heap (the port grows it rather than raise MemoryError); --stats FILE and
// --headroom BYTES measure heap use, explained in tests/upy.py.  --lib DIR copies every file under DIR
// into /lib as well (fake `machine`/`usb` modules, data files such as p256_table.bin).
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
const here = path.dirname(fileURLToPath(import.meta.url));  // tools/, whose parent is the repo root
const PKG = "../node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs";
const PRELUDE = `import gc as __upy_gc, sys as __upy_sys, micropython as __upy_mp
__upy_t = __upy_ballast = None
if '/lib' not in __upy_sys.path: __upy_sys.path.append('/lib')
def __upy_sum():  # constant while the heap keeps its size
    return __upy_gc.mem_alloc() + __upy_gc.mem_free()
def __upy_fill(blocks, n):  # blocks 2-tuples of one GC block each (first fit: holes first), bytearray(n)
    global __upy_ballast
    while blocks:
        __upy_ballast = (None, __upy_ballast)
        blocks -= 1
    if n: __upy_ballast = (bytearray(n), __upy_ballast)`;
const RESERVE_BYTES = 64 << 20;
const fail = (msg) => process.exit((process.stderr.write(`upy_run: ${msg}\n`), 2));
function sink(stream) {  // MicroPython hands over one byte per call; write whole lines (or 64 KiB)
  const buf = Buffer.alloc(65536), s = { capture: null };
  let n = 0;
  s.flush = () => { if (n) stream.write(Buffer.from(buf.subarray(0, n))); n = 0; };
  s.put = (bytes) => {
    for (const b of bytes) if (s.capture) s.capture.push(b); else if ((buf[n++] = b) === 10 || n === buf.length) s.flush();
  };
  return s;
}

function copyPy(FS, src, dst) {  // every .py (and .json data, e.g. protocol/profiles) under host dir src to dst
  if (!fs.existsSync(src)) return;
  if (!FS.analyzePath(dst).exists) FS.mkdirTree(dst);
  for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
    const from = path.join(src, ent.name);
    if (ent.isDirectory() && ent.name !== "__pycache__") copyPy(FS, from, `${dst}/${ent.name}`);
    else if (ent.isFile() && (ent.name.endsWith(".py") || ent.name.endsWith(".json")))
      FS.writeFile(`${dst}/${ent.name}`, fs.readFileSync(from));
  }
}

function copyAll(FS, src, dst) {  // every file under host dir src (any type) to dst
  if (!FS.analyzePath(dst).exists) FS.mkdirTree(dst);
  for (const ent of fs.readdirSync(src, { withFileTypes: true })) {
    const from = path.join(src, ent.name);
    if (ent.isDirectory() && ent.name !== "__pycache__") copyAll(FS, from, `${dst}/${ent.name}`);
    else if (ent.isFile()) FS.writeFile(`${dst}/${ent.name}`, fs.readFileSync(from));
  }
}

function parts(src) {  // split at #upy:collect; leading newlines keep the file's line numbers
  let lines = 0;
  return src.split(/^#[ \t]*upy:collect[ \t\r]*$/m).map((part) => {
    const padded = "\n".repeat(lines) + part;
    lines += part.split("\n").length - 1;
    return padded;
  });
}

function exitCodeOf(error) {  // SystemExit's argument mapped to a process status, as CPython does
  const arg = (/SystemExit: ?(.*)\n*$/.exec(error.message) || ["", ""])[1];
  if (arg === "" || arg === "None" || /^-?\d+$/.test(arg)) return Number(arg === "None" ? 0 : arg) & 255;
  return (process.stderr.write(arg + "\n"), 1);
}
const opt = { heap: 1 << 20, root: path.dirname(here), lib: null, stats: null, headroom: null }, argv = process.argv.slice(2);
let script = null;
while (argv.length) {
  const a = argv.shift(), key = a.slice(2);
  if (a.startsWith("--") && key in opt && argv.length) opt[key] = ["root", "lib", "stats"].includes(key) ? argv.shift() : Number(argv.shift());
  else if (script === null && !a.startsWith("--")) script = a;
  else fail(`unexpected argument ${a}`);
}
if (!script || !(opt.heap > 0)) fail("usage: upy_run.mjs [--heap BYTES] [--root DIR] [--lib DIR] [--stats FILE] [--headroom BYTES] SCRIPT.py");
const source = fs.existsSync(script) ? fs.readFileSync(script, "utf8") : fail(`no such script: ${script}`);
const { loadMicroPython } = await import(new URL(PKG, import.meta.url)).catch((e) =>
  fail(`cannot load the MicroPython WebAssembly build (${e.message}); run \`npm ci\` in ${path.dirname(here)}`));
const out = sink(process.stdout), err = sink(process.stderr);
const mp = await loadMicroPython({ heapsize: opt.heap, linebuffer: false, stdout: out.put, stderr: err.put });
// Measuring (--stats): the first 64 MiB of linear memory are taken before the port adds a heap
// area. Inside a part it adds areas rather than collect (tests/upy.py), and they used to land 2 to
// 12 MiB up, where the last three characters of a string and its NUL, read as a word, point
// ("pos\0" is 0x00736f70): the conservative collector then kept whatever garbage block such a
// word named, 1.4 to 14.7 KB of it after the board session (README, "MicroPython heap"). Text
// spells no address from 16 MiB to 512 MiB (four characters are 0x20202020 at least), nor a
// board's RAM (0x20000000 on the RP2040).
if (opt.stats) mp._module._malloc(RESERVE_BYTES);
for (const pkg of ["protocol", "device", "board"]) copyPy(mp.FS, path.resolve(opt.root, pkg), `/lib/${pkg}`);
if (opt.lib) copyAll(mp.FS, path.resolve(opt.lib), "/lib");
const py = (name) => mp.globals.get(name);  // calling Python from JS compiles nothing
let collect, alloc, sum, fill, memInfoRaw;  // set once the prelude has run
function memInfo() {  // GC heap {total, free, maxFree} in bytes (blocks are 16 bytes on wasm32)
  out.capture = [];
  memInfoRaw();
  const text = Buffer.from(out.capture).toString(), num = (re) => Number(re.exec(text)[1]);
  out.capture = null;
  return { total: num(/total: (\d+)/), free: num(/free: (\d+)/), maxFree: 16 * num(/max free sz: (\d+)/) };
}
function ballast(headroom) {  // fill every hole, then all of the largest free run but `headroom`
  let info = memInfo(), blocks = 0;
  for (let k = 0; k < 50 && info.free > info.maxFree; k++, info = memInfo()) {
    fill((info.free - info.maxFree) / 16, 0);
    blocks += (info.free - info.maxFree) / 16;
  }
  const n = Math.max(0, info.maxFree - headroom - 48);
  if (n) fill(0, n);
  collect();
  return { arena: info.total, ballast: 16 * blocks + (n && 16 * Math.ceil(n / 16) + 32) };
}
try {
  mp.runPython(PRELUDE);
  const gc = py("__upy_gc");
  [collect, alloc, sum, fill, memInfoRaw] = [gc.collect, gc.mem_alloc, py("__upy_sum"), py("__upy_fill"), py("__upy_mp").mem_info];
  collect();  // a call from JS: the collection really runs when it returns
  const stats = { heap: opt.heap, arena: memInfo().total, ballast: 0, grew: [], live: [] };
  const all = parts(source);
  for (const [i, part] of all.entries()) {
    if (opt.headroom !== null && i === all.length - 1) Object.assign(stats, ballast(opt.headroom));
    // Areas are added, never freed, inside a call: the part grew the heap iff the sum differs at its
    // end, sampled there by the epilogue (returning to JS may free emptied areas).
    const before = sum();
    mp.runPython(part + (opt.stats ? "\n__upy_t = __upy_sum()\n" : "\n"));
    if (opt.stats) stats.grew.push(py("__upy_t") !== before || (i === 0 && stats.arena > opt.heap));
    collect();  // between parts, even without --stats
    stats.live.push(alloc() - stats.ballast);
  }
  out.flush(); err.flush();
  if (opt.stats) fs.writeFileSync(opt.stats, JSON.stringify(stats) + "\n");
} catch (e) {
  out.flush(); err.flush();
  if (e?.name !== "PythonError") fail(`JavaScript error: ${e?.message ?? e}`);
  if (e.type === "SystemExit") process.exitCode = exitCodeOf(e);
  else { process.stderr.write(e.message); process.exitCode = 1; }
}
