/**
 * A storage driver for the offline queue of hostd/sdk/browser/fiscal.mjs backed by one JSON file,
 * for the tests: drafts queued by one `node` process while the daemon is down are flushed by the
 * next one after it is back, as a browser's IndexedDB keeps them across page loads. It is also
 * the example of a pluggable driver (seed 003 "offlineStorage": `save`, `list`, `delete`, `mark`).
 * Each write replaces the file through a rename, so a killed process leaves the old or the new
 * file, never half of one.
 */

import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";

export class FileStorage {
  constructor(path) {
    this.path = path;
  }

  read() {
    return existsSync(this.path) ? JSON.parse(readFileSync(this.path, "utf8")) : [];
  }

  write(drafts) {
    writeFileSync(this.path + ".tmp", JSON.stringify(drafts, null, 1));
    renameSync(this.path + ".tmp", this.path);
  }

  save(draft) {
    const drafts = this.read();
    if (drafts.some((d) => d.id === draft.id)) throw new Error(`draft ${draft.id} is already stored`);
    this.write([...drafts, draft]);
  }

  list(status) {
    return this.read().filter((d) => status === undefined || d.status === status).sort((a, b) => a.seq - b.seq);
  }

  delete(id) {
    this.write(this.read().filter((d) => d.id !== id));
  }

  mark(id, status, fields = {}) {
    const drafts = this.read();
    const i = drafts.findIndex((d) => d.id === id);
    if (i < 0) throw new Error(`draft ${id} is not stored`);
    drafts[i] = { ...drafts[i], ...fields, status };
    this.write(drafts);
  }
}
