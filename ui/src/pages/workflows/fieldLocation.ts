/**
 * Where a field the server names (``steps.fetch.agent_name``, ``triggers[0].cron``) sits in the
 * JSON text being edited, so that its error is shown there. A field that is not in the text
 * (a required one left out) falls back to its nearest ancestor that is, and at worst to the
 * start of the document.
 */
import { type Node, findNodeAtLocation, parseTree } from "jsonc-parser";

export interface Span {
  from: number;
  to: number;
}

export function pathOf(field: string): (string | number)[] {
  const path: (string | number)[] = [];
  for (const part of field.split(".")) {
    const match = /^([^[\]]*)((?:\[\d+\])*)$/.exec(part);
    if (!match) {
      path.push(part);
      continue;
    }
    if (match[1]) path.push(match[1]);
    for (const index of match[2]!.matchAll(/\[(\d+)\]/g)) path.push(Number(index[1]));
  }
  return path.map((p) => (typeof p === "string" && /^\d+$/.test(p) ? Number(p) : p));
}

function spanOf(node: Node): Span {
  // A property's value: mark its key, which is where a reader looks for the field.
  const parent = node.parent;
  if (parent?.type === "property" && parent.children?.[1] === node) {
    const key = parent.children[0]!;
    return { from: key.offset, to: key.offset + key.length };
  }
  return { from: node.offset, to: node.offset + node.length };
}

export function locateField(text: string, field: string): Span {
  const tree = parseTree(text);
  if (!tree) return { from: 0, to: Math.min(1, text.length) };
  const path = pathOf(field);
  for (let length = path.length; length > 0; length -= 1) {
    const node = findNodeAtLocation(tree, path.slice(0, length));
    if (node) return spanOf(node);
    // A path into an array given as a key (``steps.0``) is also tried as an index.
  }
  return { from: tree.offset, to: Math.min(tree.offset + 1, tree.offset + tree.length) };
}
