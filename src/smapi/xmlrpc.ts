// XML-RPC values as SMAPIv1 carries them. One codec serves both directions:
// decoding what xapi writes (bare <value>text</value>, <value/>, no header) and
// what Python writes (<string>, header, newlines), and encoding either style, so
// the driver's responses and the simulator's requests come from the same code.
import { XMLParser } from 'fast-xml-parser';

export class DateTimeValue {
  constructor(readonly iso: string) {}
}

export type XmlRpcValue =
  | string
  | number
  | boolean
  | null
  | DateTimeValue
  | Buffer
  | XmlRpcValue[]
  | XmlRpcStruct;
export interface XmlRpcStruct {
  [key: string]: XmlRpcValue;
}

export class XmlRpcDecodeError extends Error {}

type Node = Record<string, unknown>;

const parser = new XMLParser({
  preserveOrder: true,
  ignoreAttributes: true,
  parseTagValue: false,
  trimValues: false,
  processEntities: true,
  htmlEntities: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  commentPropName: '#comment',
});

function tagOf(node: Node): string {
  for (const k of Object.keys(node)) if (k !== ':@') return k;
  return '';
}

function childrenOf(node: Node): Node[] {
  const v = node[tagOf(node)];
  return Array.isArray(v) ? (v as Node[]) : [];
}

function elements(nodes: Node[]): Node[] {
  return nodes.filter((n) => {
    const t = tagOf(n);
    return t !== '#text' && t !== '#comment';
  });
}

function textOf(nodes: Node[]): string {
  return nodes
    .filter((n) => tagOf(n) === '#text')
    .map((n) => String(n['#text']))
    .join('');
}

function only(nodes: Node[], tag: string, where: string): Node {
  const els = elements(nodes);
  if (els.length !== 1 || tagOf(els[0]!) !== tag) {
    throw new XmlRpcDecodeError(`expected exactly one <${tag}> in ${where}`);
  }
  return els[0]!;
}

function decodeScalar(tag: string, text: string): XmlRpcValue {
  switch (tag) {
    case 'string':
      return text;
    case 'int':
    case 'i4':
    case 'i8': {
      if (!/^\s*[+-]?\d+\s*$/.test(text)) throw new XmlRpcDecodeError(`bad <${tag}> ${JSON.stringify(text)}`);
      return Number(text.trim());
    }
    case 'double': {
      const n = Number(text.trim());
      if (text.trim() === '' || Number.isNaN(n)) throw new XmlRpcDecodeError(`bad <double> ${JSON.stringify(text)}`);
      return n;
    }
    case 'boolean': {
      const t = text.trim();
      if (t === '1' || t === 'true') return true;
      if (t === '0' || t === 'false') return false;
      throw new XmlRpcDecodeError(`bad <boolean> ${JSON.stringify(text)}`);
    }
    case 'dateTime.iso8601':
      return new DateTimeValue(text.trim());
    case 'base64':
      return Buffer.from(text.replace(/\s+/g, ''), 'base64');
    default:
      throw new XmlRpcDecodeError(`unknown XML-RPC type <${tag}>`);
  }
}

/** Decodes the children of a <value> element. */
function decodeValue(children: Node[]): XmlRpcValue {
  const els = elements(children);
  if (els.length === 0) return textOf(children); // bare <value>text</value> or <value/>
  if (els.length > 1) throw new XmlRpcDecodeError('<value> holds more than one element');
  const el = els[0]!;
  const tag = tagOf(el);
  const kids = childrenOf(el);
  if (tag === 'nil') return null;
  if (tag === 'struct') {
    const out: XmlRpcStruct = {};
    for (const member of elements(kids)) {
      if (tagOf(member) !== 'member') throw new XmlRpcDecodeError(`<struct> holds <${tagOf(member)}>`);
      const mk = elements(childrenOf(member));
      const nameNode = mk.find((n) => tagOf(n) === 'name');
      const valueNode = mk.find((n) => tagOf(n) === 'value');
      if (!nameNode || !valueNode) throw new XmlRpcDecodeError('<member> needs <name> and <value>');
      out[textOf(childrenOf(nameNode))] = decodeValue(childrenOf(valueNode));
    }
    return out;
  }
  if (tag === 'array') {
    const data = only(kids, 'data', '<array>');
    return elements(childrenOf(data)).map((v) => {
      if (tagOf(v) !== 'value') throw new XmlRpcDecodeError(`<data> holds <${tagOf(v)}>`);
      return decodeValue(childrenOf(v));
    });
  }
  if (elements(kids).length > 0) throw new XmlRpcDecodeError(`<${tag}> must hold text only`);
  return decodeScalar(tag, textOf(kids));
}

function parseDocument(xml: string): Node[] {
  try {
    return parser.parse(xml, true) as Node[];
  } catch (e) {
    throw new XmlRpcDecodeError(`not well-formed XML: ${(e as Error).message}`);
  }
}

export interface MethodCall {
  methodName: string;
  params: XmlRpcValue[];
}

function decodeParams(nodes: Node[]): XmlRpcValue[] {
  const params = nodes.find((n) => tagOf(n) === 'params');
  if (!params) return [];
  return elements(childrenOf(params)).map((p) => {
    if (tagOf(p) !== 'param') throw new XmlRpcDecodeError(`<params> holds <${tagOf(p)}>`);
    return decodeValue(childrenOf(only(childrenOf(p), 'value', '<param>')));
  });
}

export function decodeMethodCall(xml: string): MethodCall {
  const root = only(parseDocument(xml), 'methodCall', 'the document');
  const kids = elements(childrenOf(root));
  const nameNode = kids.find((n) => tagOf(n) === 'methodName');
  if (!nameNode) throw new XmlRpcDecodeError('<methodCall> has no <methodName>');
  return { methodName: textOf(childrenOf(nameNode)).trim(), params: decodeParams(kids) };
}

export type MethodResponse = { ok: true; value: XmlRpcValue } | { ok: false; faultCode: number; faultString: string };

export function decodeMethodResponse(xml: string): MethodResponse {
  const root = only(parseDocument(xml), 'methodResponse', 'the document');
  const kids = elements(childrenOf(root));
  const fault = kids.find((n) => tagOf(n) === 'fault');
  if (fault) {
    const v = decodeValue(childrenOf(only(childrenOf(fault), 'value', '<fault>')));
    if (!isStruct(v) || typeof v.faultCode !== 'number' || typeof v.faultString !== 'string') {
      throw new XmlRpcDecodeError('<fault> must be a struct with faultCode and faultString');
    }
    return { ok: false, faultCode: v.faultCode, faultString: v.faultString };
  }
  const params = decodeParams(kids);
  if (params.length !== 1) throw new XmlRpcDecodeError('<methodResponse> must carry exactly one param');
  return { ok: true, value: params[0]! };
}

export function isStruct(v: XmlRpcValue | undefined): v is XmlRpcStruct {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof DateTimeValue) && !Buffer.isBuffer(v);
}

// ---------------------------------------------------------------------------
// Encoding

// XML 1.0 cannot carry C0 controls other than TAB/LF/CR even as references; xapi's
// own encoder drops them too, so dropping keeps every document well-formed.
// eslint-disable-next-line no-control-regex
const XML_ILLEGAL = /[\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

export function escapeXml(s: string): string {
  return s.replace(XML_ILLEGAL, '').replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export interface EncodeStyle {
  /** xapi's style: bare strings, <value/> for "", no <string> tag. */
  bareStrings: boolean;
}
export const PYTHON_STYLE: EncodeStyle = { bareStrings: false };
export const XAPI_STYLE: EncodeStyle = { bareStrings: true };

export function encodeValue(v: XmlRpcValue, style: EncodeStyle = PYTHON_STYLE): string {
  if (v === null) return '<value><nil/></value>';
  if (typeof v === 'string') {
    if (style.bareStrings) return v === '' ? '<value/>' : `<value>${escapeXml(v)}</value>`;
    return `<value><string>${escapeXml(v)}</string></value>`;
  }
  if (typeof v === 'boolean') return `<value><boolean>${v ? 1 : 0}</boolean></value>`;
  if (typeof v === 'number') {
    if (Number.isInteger(v) && Math.abs(v) <= 0x7fffffff) return `<value><int>${v}</int></value>`;
    return `<value><double>${v}</double></value>`;
  }
  if (v instanceof DateTimeValue) return `<value><dateTime.iso8601>${escapeXml(v.iso)}</dateTime.iso8601></value>`;
  if (Buffer.isBuffer(v)) return `<value><base64>${v.toString('base64')}</base64></value>`;
  if (Array.isArray(v)) {
    if (v.length === 0) return '<value><array><data/></array></value>';
    return `<value><array><data>${v.map((x) => encodeValue(x, style)).join('')}</data></array></value>`;
  }
  const keys = Object.keys(v).filter((k) => v[k] !== undefined);
  if (keys.length === 0) return '<value><struct/></value>';
  const members = keys.map((k) => `<member><name>${escapeXml(k)}</name>${encodeValue(v[k]!, style)}</member>`);
  return `<value><struct>${members.join('')}</struct></value>`;
}

/** A request exactly as xapi writes it: one line, no header, bare strings. */
export function encodeMethodCall(methodName: string, params: XmlRpcValue[], style: EncodeStyle = XAPI_STYLE): string {
  const ps = params.map((p) => `<param>${encodeValue(p, style)}</param>`).join('');
  return `<methodCall><methodName>${escapeXml(methodName)}</methodName><params>${ps}</params></methodCall>`;
}

const HEADER = "<?xml version='1.0'?>\n";

export function encodeResponse(value: XmlRpcValue): string {
  return `${HEADER}<methodResponse><params><param>${encodeValue(value)}</param></params></methodResponse>\n`;
}

export function encodeFault(faultCode: number, faultString: string): string {
  const body = encodeValue({ faultCode, faultString });
  return `${HEADER}<methodResponse><fault>${body}</fault></methodResponse>\n`;
}
