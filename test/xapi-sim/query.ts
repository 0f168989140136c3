// xapi's get_all_records_where expression language (ocaml/database/db_filter):
//   field "SR" = "OpaqueRef:..." and not (field "is_a_snapshot" = "true") or true
// Fields compare by their DB string form (bools "true"/"false", ints decimal).
import { fieldToString, type Row } from './db.js';
import { ApiError } from './wire.js';

type Tok = { k: 'str'; v: string } | { k: 'word'; v: string } | { k: 'op'; v: string };

function lex(s: string): Tok[] {
  const out: Tok[] = [];
  let i = 0;
  while (i < s.length) {
    const c = s[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"') {
      let v = '';
      i++;
      while (i < s.length && s[i] !== '"') {
        if (s[i] === '\\' && i + 1 < s.length) i++;
        v += s[i++];
      }
      if (s[i] !== '"') throw bad(s);
      i++;
      out.push({ k: 'str', v });
    } else if (c === '(' || c === ')' || c === '=') {
      out.push({ k: 'op', v: c });
      i++;
    } else if (s.startsWith('<>', i)) {
      out.push({ k: 'op', v: '<>' });
      i += 2;
    } else {
      const m = /^[A-Za-z_]+/.exec(s.slice(i));
      if (!m) throw bad(s);
      out.push({ k: 'word', v: m[0].toLowerCase() });
      i += m[0].length;
    }
  }
  return out;
}

function bad(s: string): ApiError {
  return new ApiError('INTERNAL_ERROR', [`Db_filter.Expression_error: ${s}`]);
}

export type Pred = (row: Row, ref: string) => boolean;

export function compileWhere(expr: string): Pred {
  const toks = lex(expr);
  let p = 0;
  const peek = () => toks[p];
  const operand = (): ((row: Row, ref: string) => string) => {
    const t = toks[p++];
    if (t?.k === 'word' && t.v === 'field') {
      const name = toks[p++];
      if (name?.k !== 'str') throw bad(expr);
      return (row, ref) => (name.v === 'ref' || name.v === '_ref' ? ref : fieldToString(row[name.v]));
    }
    if (t?.k === 'str') return () => t.v;
    throw bad(expr);
  };
  const atom = (): Pred => {
    const t = peek();
    if (t?.k === 'word' && t.v === 'true') return p++, () => true;
    if (t?.k === 'word' && t.v === 'false') return p++, () => false;
    if (t?.k === 'word' && t.v === 'not') {
      p++;
      const a = atom();
      return (r, ref) => !a(r, ref);
    }
    if (t?.k === 'op' && t.v === '(') {
      p++;
      const e = or();
      const close = toks[p++];
      if (close?.k !== 'op' || close.v !== ')') throw bad(expr);
      return e;
    }
    const l = operand();
    const op = toks[p++];
    if (op?.k !== 'op' || (op.v !== '=' && op.v !== '<>')) throw bad(expr);
    const r = operand();
    return op.v === '=' ? (row, ref) => l(row, ref) === r(row, ref) : (row, ref) => l(row, ref) !== r(row, ref);
  };
  const and = (): Pred => {
    let a = atom();
    while (peek()?.k === 'word' && peek()!.v === 'and') {
      p++;
      const l = a;
      const r = atom();
      a = (row, ref) => l(row, ref) && r(row, ref);
    }
    return a;
  };
  const or = (): Pred => {
    let a = and();
    while (peek()?.k === 'word' && peek()!.v === 'or') {
      p++;
      const l = a;
      const r = and();
      a = (row, ref) => l(row, ref) || r(row, ref);
    }
    return a;
  };
  const e = or();
  if (p !== toks.length) throw bad(expr);
  return e;
}
