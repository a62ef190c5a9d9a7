/**
 * Builds `browser/caas-client.js`: the whole SDK as one ES module for pages without a bundler (the dev
 * gateway's demo page serves it). It joins tsc's output (`dist/src/*.js`) without any bundler package:
 * each module becomes a function scope that returns its exports, in dependency order, so module-private
 * names never clash. It only understands the import/export forms tsc emits for this code base, and
 * fails loudly on anything else. The output is deterministic, so a test can check the committed file is
 * the build of the current sources.
 *
 * Usage: `npm run bundle` (builds first).
 */
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

interface Module {
  name: string;
  body: string;
  /** `local name → [module, exported name]`. */
  imports: Array<{ local: string; from: string; imported: string }>;
  exports: Map<string, { from?: string; name: string }>;
  reexportAll: string[];
  dependencies: Set<string>;
}

const RELATIVE = /^\.\/([\w-]+)\.js$/;

function parse(name: string, source: string): Module {
  const module: Module = { name, body: '', imports: [], exports: new Map(), reexportAll: [], dependencies: new Set() };
  const target = (specifier: string): string => {
    const match = RELATIVE.exec(specifier);
    if (!match?.[1]) throw new Error(`${name}: only relative sibling imports are bundled, not ${specifier}`);
    module.dependencies.add(match[1]);
    return match[1];
  };
  // `export {};` is how tsc marks a types-only file as a module: nothing to bundle.
  let body = source.replace(/^\/\/# sourceMappingURL=.*$/gm, '').replace(/^export\s*\{\s*\};?[ \t]*$/gm, '');
  body = body.replace(/^import\s*\{([^}]*)\}\s*from\s*'([^']+)';?[ \t]*$/gm, (_all, names: string, from: string) => {
    const source = target(from);
    for (const part of names.split(',').map((item) => item.trim()).filter(Boolean)) {
      const [imported, local] = part.split(/\s+as\s+/) as [string, string | undefined];
      module.imports.push({ local: local ?? imported, from: source, imported });
    }
    return '';
  });
  body = body.replace(/^export\s*\*\s*from\s*'([^']+)';?[ \t]*$/gm, (_all, from: string) => {
    module.reexportAll.push(target(from));
    return '';
  });
  body = body.replace(/^export\s*\{([^}]*)\}\s*from\s*'([^']+)';?[ \t]*$/gm, (_all, names: string, from: string) => {
    const source = target(from);
    for (const part of names.split(',').map((item) => item.trim()).filter(Boolean)) {
      const [imported, exported] = part.split(/\s+as\s+/) as [string, string | undefined];
      module.exports.set(exported ?? imported, { from: source, name: imported });
    }
    return '';
  });
  body = body.replace(/^export\s+((?:async\s+)?function\*?|class|const|let|var)\s+([\w$]+)/gm, (_all, kind: string, exported: string) => {
    module.exports.set(exported, { name: exported });
    return `${kind} ${exported}`;
  });
  if (/^\s*(import|export)\b/m.test(body)) throw new Error(`${name}: an import or export form the bundler does not know`);
  module.body = body.trim();
  return module;
}

/** Modules in an order where each comes after everything it imports. */
function ordered(modules: Map<string, Module>): Module[] {
  const done = new Set<string>();
  const visiting = new Set<string>();
  const result: Module[] = [];
  const visit = (name: string): void => {
    if (done.has(name)) return;
    if (visiting.has(name)) throw new Error(`import cycle through ${name}`);
    const module = modules.get(name);
    if (!module) throw new Error(`missing module ${name}`);
    visiting.add(name);
    for (const dependency of [...module.dependencies].sort()) visit(dependency);
    visiting.delete(name);
    done.add(name);
    result.push(module);
  };
  for (const name of [...modules.keys()].sort()) visit(name);
  return result;
}

/** Every name a module exports, its `export *` included. */
function exportedNames(modules: Map<string, Module>, name: string): string[] {
  const module = modules.get(name);
  if (!module) return [];
  const names = new Set(module.exports.keys());
  for (const from of module.reexportAll) for (const reexported of exportedNames(modules, from)) names.add(reexported);
  return [...names].sort();
}

export function bundle(distSrc: string, header: string): string {
  const modules = new Map<string, Module>();
  for (const file of readdirSync(distSrc).filter((entry) => entry.endsWith('.js')).sort()) {
    const name = file.slice(0, -3);
    modules.set(name, parse(name, readFileSync(join(distSrc, file), 'utf8')));
  }
  const scope = (name: string): string => `__${name.replace(/-/g, '_')}`;
  const parts: string[] = [header];
  for (const module of ordered(modules)) {
    const lines: string[] = [];
    for (const { local, from, imported } of module.imports) lines.push(`const ${local} = ${scope(from)}.${imported};`);
    lines.push(module.body);
    const returned = exportedNames(modules, module.name).map((exported) => {
      const own = module.exports.get(exported);
      if (own && own.from === undefined) return `${exported}`;
      if (own?.from !== undefined) return `${exported}: ${scope(own.from)}.${own.name}`;
      const source = module.reexportAll.find((from) => exportedNames(modules, from).includes(exported));
      return `${exported}: ${scope(source ?? '')}.${exported}`;
    });
    lines.push(`return { ${returned.join(', ')} };`);
    parts.push(`// ---- ${module.name}\nconst ${scope(module.name)} = (() => {\n${lines.join('\n')}\n})();`);
  }
  parts.push(`export const { ${exportedNames(modules, 'index').join(', ')} } = ${scope('index')};`);
  return parts.join('\n\n') + '\n';
}

export const BUNDLE_HEADER =
  '// @caas/client browser build: generated by `npm run bundle` from sdk/js/src (do not edit; the tests check it is current).';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BUNDLE_PATH = join(root, 'browser', 'caas-client.js');
export const DIST_SRC = join(root, 'dist', 'src');

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  writeFileSync(BUNDLE_PATH, bundle(DIST_SRC, BUNDLE_HEADER));
  console.log(`wrote ${BUNDLE_PATH}`);
}
