// node tools/upy_board.mjs [--heap BYTES] [--dump DIR] [--run-main]
// A MicroPython "board" for tests: the pinned WebAssembly build's REPL on stdin/stdout, raw bytes
// both ways, so the real `mpremote` can drive it through a pty (tests/boardsim.py bridges them).
//
// Why this exists: `fiscal board deploy` must be tested against real MicroPython and the real
// mpremote, not a model of either.  The port's event-driven REPL (replInit/replProcessChar) does
// friendly and raw REPL itself; this script adds only what a board's C main loop would add:
// - soft reset: when the REPL returns "forced exit" (Ctrl-D on an empty raw line, SystemExit) the
//   interpreter is replaced by a fresh one (new heap, new sys.modules) that keeps the files, prints
//   "MPY: soft reboot" and stays in the REPL mode it was in, as ports/*/main.c do;
// - hard reset: `machine.reset()` (this build has no `machine`; a one-function stand-in lives
//   outside the board's files, in /sim) reboots into the friendly REPL like a power cycle: boot.py
//   runs, then main.py (only with --run-main: a real firmware main.py never returns, and a hung
//   synchronous interpreter would hang the test; without it the boot log says what would run);
// - raw-paste mode (Ctrl-E A Ctrl-A): the port's own implementation reads stdin synchronously,
//   which cannot work under an event loop, so the same protocol (window 128, \x01 per window,
//   \x04 at the end, then the raw REPL's output framing) is served here.
// Events go to stderr as "upy_board: ..." lines.  At the end of stdin, or on SIGTERM, the board's
// files are written under --dump DIR (then exit 0), so a test can check them independently of
// mpremote.  Harness failure: exit 2.
import fs from "node:fs";
import path from "node:path";

const PKG = "../node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs";
const SYSTEM_DIRS = new Set(["/dev", "/proc", "/tmp", "/home", "/sim"]);  // not the board's files
const FORCED_EXIT = 0x100;  // shared/runtime/pyexec.h PYEXEC_FORCED_EXIT
const PASTE_WINDOW = 128;   // MICROPY_REPL_STDIN_BUFFER_MAX / 2, as the port announces
const MACHINE_SHIM = `import js
def reset():
    js.upyBoardHardReset()
    raise SystemExit
def soft_reset():
    raise SystemExit
`;
const PRELUDE = `import sys
sys.path[:] = ['', '.frozen', '/lib', '/sim']
`;

const log = (msg) => process.stderr.write(`upy_board: ${msg}\n`);
const fail = (msg) => process.exit((log(msg), 2));
const opt = { heap: 1 << 20, dump: null, runMain: false };
const argv = process.argv.slice(2);
while (argv.length) {
  const a = argv.shift();
  if (a === "--heap" && argv.length) opt.heap = Number(argv.shift());
  else if (a === "--dump" && argv.length) opt.dump = argv.shift();
  else if (a === "--run-main") opt.runMain = true;
  else fail(`unexpected argument ${a}; usage: upy_board.mjs [--heap BYTES] [--dump DIR] [--run-main]`);
}
const { loadMicroPython } = await import(new URL(PKG, import.meta.url)).catch((e) =>
  fail(`cannot load the MicroPython WebAssembly build (${e.message}); run \`npm ci\``));

let mp = null, raw = false, hardReset = false, mute = false, skip = 0, outBuf = [];
globalThis.upyBoardHardReset = () => { hardReset = true; };
const put = (bytes) => {  // the interpreter's stdout and stderr are both the REPL's serial line
  for (const b of bytes) {
    if (mute) continue;
    if (skip) { skip--; continue; }
    outBuf.push(b);
  }
};
const emit = (text) => put(Buffer.from(text, "latin1"));
// This port's file system is Emscripten's, so OSError carries WASI errno numbers; a board's VFS
// raises MicroPython's (py/mperrno.h, Linux numbering), which is what mpremote decodes ("OSError:
// 2" is a missing file; "OSError: 44" would be an unknown transport error).  Tracebacks are
// translated on the way out, as if the board had MicroPython's VFS.
const WASI_TO_MP_ERRNO = { 2: 13, 8: 9, 20: 17, 28: 22, 29: 5, 31: 21, 44: 2, 51: 28, 54: 20, 55: 39, 63: 1 };
const flush = () => {
  if (!outBuf.length) return;
  const text = Buffer.from(outBuf).toString("latin1").replace(/OSError: (\d+)(?=\r?\n)/g,
    (m, n) => `OSError: ${WASI_TO_MP_ERRNO[n] ?? n}`);
  process.stdout.write(Buffer.from(text, "latin1"));
  outBuf = [];
};

function snapshot(FS, dir = "/", files = []) {  // [path, bytes|null for a directory]
  for (const name of FS.readdir(dir)) {
    if (name === "." || name === "..") continue;
    const p = dir === "/" ? `/${name}` : `${dir}/${name}`;
    if (SYSTEM_DIRS.has(p)) continue;
    if (FS.isDir(FS.stat(p).mode)) { files.push([p, null]); snapshot(FS, p, files); }
    else files.push([p, FS.readFile(p)]);
  }
  return files;
}

function runFile(name) {  // boot.py / main.py: a traceback is printed, as a board prints it
  if (!mp.FS.analyzePath(`/${name}`).exists) return;
  try { mp.runPython(`exec(open('/${name}').read(), {'__name__': '__main__'})`); }
  catch (e) {
    if (e?.name !== "PythonError") throw e;
    emit(e.message.replace(/\r?\n/g, "\r\n"));
  }
}

async function boot(files, mode) {  // mode: "power" (hard reset) or "soft"
  mp = await loadMicroPython({ heapsize: opt.heap, linebuffer: false, stdout: put, stderr: put });
  for (const [p, data] of files) if (data === null) mp.FS.mkdirTree(p); else mp.FS.writeFile(p, data);
  mp.FS.mkdirTree("/sim");
  mp.FS.writeFile("/sim/machine.py", MACHINE_SHIM);
  mp.runPython(PRELUDE);
  if (mode === "soft") emit("MPY: soft reboot\r\n");
  runFile("boot.py");
  if (!raw && mp.FS.analyzePath("/main.py").exists) {
    log(`${mode} boot in friendly REPL: main.py ${opt.runMain ? "runs" : "would run (no --run-main)"}`);
    if (opt.runMain) runFile("main.py");
  }
  mute = raw;  // back in raw mode the port prints only the raw banner, which Ctrl-A produces
  mp.replInit();
  mute = false;
  if (raw) mp.replProcessChar(0x01);
}

async function reset() {
  const files = snapshot(mp.FS), mode = hardReset ? "power" : "soft";
  if (hardReset) raw = false;
  hardReset = false;
  log(`${mode === "power" ? "hard" : "soft"} reset (${raw ? "raw" : "friendly"} REPL)`);
  await boot(files, mode);
}

let paste = null;    // raw-paste state: {code: [], remain}
let pending = [];    // Ctrl-E, then "A": may begin Ctrl-E A Ctrl-A (raw-paste request)
let lineLen = 0;     // bytes on the current raw REPL line: raw-paste is asked on an empty one
async function feed(c) {
  if (paste) {
    if (c === 0x04 || c === 0x03) {  // end of data (Ctrl-C: abandon it)
      emit("\x04");
      const code = c === 0x04 ? paste.code : [];
      paste = null;
      if (!code.length) { emit("\x04\x04>"); return; }
      skip = 2;  // the raw REPL's "OK": raw-paste mode does not print it
      for (const b of code) mp.replProcessChar(b);   // raw bytes only accumulate on the line
      if (mp.replProcessChar(0x04) & FORCED_EXIT) await reset();
      return;
    }
    paste.code.push(c);
    if (--paste.remain === 0) { emit("\x01"); paste.remain = PASTE_WINDOW; }
    return;
  }
  if (raw && c === 0x01 && pending.length === 2 && pending[0] === 0x05 && pending[1] === 0x41) {
    pending = [];
    emit("R\x01" + String.fromCharCode(PASTE_WINDOW & 0xff, PASTE_WINDOW >> 8) + "\x01");
    paste = { code: [], remain: PASTE_WINDOW };
    return;
  }
  if (raw && ((c === 0x05 && lineLen === 0 && !pending.length) || (pending.length === 1 && c === 0x41))) {
    pending.push(c);
    return;
  }
  for (const b of pending) mp.replProcessChar(b);
  lineLen += pending.length;
  pending = [];
  const ret = mp.replProcessChar(c);
  lineLen = c <= 0x04 ? 0 : lineLen + 1;  // Ctrl-A..Ctrl-D end or reset the raw line
  if (c === 0x01 && !raw) raw = true;   // Ctrl-A on an empty line: raw REPL (all mpremote sends)
  else if (c === 0x02) raw = false;      // Ctrl-B: friendly REPL
  if (ret & FORCED_EXIT) await reset();
}

function dump() {
  if (!opt.dump) return;
  for (const [p, data] of snapshot(mp.FS)) {
    const dest = path.join(opt.dump, p);
    if (data === null) fs.mkdirSync(dest, { recursive: true });
    else { fs.mkdirSync(path.dirname(dest), { recursive: true }); fs.writeFileSync(dest, data); }
  }
}

const queue = [];
let busy = false, ending = false;
async function drain() {
  if (busy) return;
  busy = true;
  try {
    while (queue.length) {
      const chunk = queue.shift();
      for (const c of chunk) await feed(c);
      flush();
    }
  } catch (e) {
    flush();
    fail(`JavaScript error: ${e?.stack ?? e}`);
  }
  busy = false;
  if (ending) finish();
}
function finish() {
  flush();
  dump();
  log("stopped");
  process.exit(0);
}

try {
  await boot([], "power");
} catch (e) {
  fail(`cannot boot: ${e?.message ?? e}`);
}
flush();
log("ready");
process.stdin.on("data", (chunk) => { queue.push(chunk); drain(); });
process.stdin.on("end", () => { ending = true; if (!busy) finish(); });
process.on("SIGTERM", () => { ending = true; if (!busy) finish(); });
