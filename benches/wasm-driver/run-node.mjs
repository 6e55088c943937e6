// Runs the wasm32-wasip1 build of the driver in Node's V8 (the engine Envoy embeds):
//   node run-node.mjs DRIVER.wasm [args...]
// aigate's library also carries its proxy-wasm exports, whose host imports ("env") the
// driver never calls: they are stubbed.
import { readFile } from "node:fs/promises";
import { WASI } from "node:wasi";
import { argv, env } from "node:process";

const wasi = new WASI({ version: "preview1", args: argv.slice(2), env, preopens: {} });
const module = await WebAssembly.compile(await readFile(argv[2]));
const imports = wasi.getImportObject();
imports.env = {};
for (const i of WebAssembly.Module.imports(module)) {
  if (i.module === "env" && i.kind === "function") imports.env[i.name] = () => 0;
}
const instance = await WebAssembly.instantiate(module, imports);
// The library's proxy-wasm entry point exports `_initialize` too; WASI's start() wants a
// command with `_start` only.
wasi.start({ exports: { _start: instance.exports._start, memory: instance.exports.memory } });
