#!/usr/bin/env python3
"""gen/vgen.py - writes the C of the XenAPI data model from datamodel/*.json.

Usage: vgen.py DATAMODEL_DIR OUT_DIR [--docs DOCS_DIR]

Outputs (every file opens with a DO NOT EDIT line):
  xapi_model.h     enums, typed containers, one record struct per class,
                   typed free/copy and db accessors
  xapi_model.c     the descriptor tables model/xtype.c walks: types, fields
                   (with offsets), classes, enums
  xapi_errors.h/.c one setter per error code, parameters named from the schema
  xapi_handlers.h  the declaration of every explicit message's handler
                   api_<class>_<message>(); api/<class>.c defines it, so a
                   forgotten message is a link error
  xapi_dispatch.c  the message table (implicit and explicit) and the wrappers
                   that decode arguments, call the handler, encode the result
  xapi_client.h/.c typed client stubs over a generic call function (xe, tests)
  docs/api/*.md    the API reference, one page per class (with --docs)

The schema format is described in datamodel/README.md. A message whose
"status" is "todo" is listed and dispatched but answers NOT_IMPLEMENTED: the
surface is the XenAPI's, what is built is said per message.
"""
import hashlib
import json
import os
import re
import sys

C_KEYWORDS = {'auto', 'break', 'case', 'char', 'const', 'continue', 'default', 'do', 'double',
              'else', 'enum', 'extern', 'float', 'for', 'goto', 'if', 'inline', 'int', 'long',
              'register', 'restrict', 'return', 'short', 'signed', 'sizeof', 'static', 'struct',
              'switch', 'typedef', 'union', 'unsigned', 'void', 'volatile', 'while', 'bool',
              'true', 'false', 'errno', 'ctx', 'errp', 'out', 'args', 'result'}
ROLES = ['read-only', 'vm-operator', 'vm-admin', 'vm-power-admin', 'pool-operator', 'pool-admin']
# Roles for implicit setters, per class (xapi's ocaml/xapi/rbac.ml and xapi_session.ml); others: pool-operator.
SETTER_ROLE = {'VM': 'vm-admin', 'VDI': 'vm-admin', 'VBD': 'vm-admin', 'VIF': 'vm-admin',
               'network': 'vm-admin', 'task': 'read-only', 'message': 'pool-operator'}
# Classes whose get_all/get_all_records xapi exposes (xapi's ocaml/idl/datamodel_utils.ml (implicit messages)), as a check.


def die(msg):
    sys.stderr.write('vgen: ' + msg + '\n')
    sys.exit(1)


def cident(s):
    s = re.sub(r'[^A-Za-z0-9_]', '_', s)
    if s[0].isdigit():
        s = '_' + s
    return s


def lower(s):
    return cident(s).lower()


class Type:
    """A parsed schema type, e.g. '(string -> VM ref set) map'."""

    def __init__(self, kind, name, elem=None, key=None, enum=None, cls=None):
        self.kind, self.name, self.elem, self.key, self.enum, self.cls = kind, name, elem, key, enum, cls

    @property
    def tag(self):
        """A C identifier naming this type, used for typed containers and descriptors."""
        k = self.kind
        if k in ('string', 'int', 'float', 'bool', 'datetime'):
            return k
        if k == 'ref':
            return 'ref'
        if k == 'enum':
            return lower(self.enum)
        if k == 'set':
            return self.elem.tag + '_set'
        if k == 'map':
            return self.key.tag + '_' + self.elem.tag + '_map'
        if k == 'record':
            return lower(self.cls) + '_record'
        if k == 'option':
            return self.elem.tag + '_option'
        die('no tag for ' + k)

    @property
    def desc_tag(self):
        """Descriptor identity: refs differ by class (HANDLE_INVALID names it)."""
        k = self.kind
        if k == 'ref':
            return 'ref_' + cident(self.cls)
        if k == 'set':
            return self.elem.desc_tag + '_set'
        if k == 'map':
            return self.key.desc_tag + '_' + self.elem.desc_tag + '_map'
        if k == 'option':
            return self.elem.desc_tag + '_option'
        return self.tag

    def ctype(self):
        k = self.kind
        if k in ('string', 'ref'):
            return 'char *'
        if k == 'int' or k == 'datetime':
            return 'int64_t '
        if k == 'float':
            return 'double '
        if k == 'bool':
            return 'bool '
        if k == 'enum':
            return 'enum xapi_%s ' % lower(self.enum)
        if k in ('set', 'map'):
            return 'struct xapi_%s ' % self.tag
        if k == 'record':
            return 'struct xapi_%s *' % self.tag
        if k == 'option':
            return '%s*' % self.elem.ctype()
        die(k)

    def param_ctype(self):
        """How a handler receives a parameter of this type."""
        k = self.kind
        if k in ('string', 'ref'):
            return 'const char *'
        if k in ('set', 'map'):
            return 'const struct xapi_%s *' % self.tag
        if k == 'record':
            return 'const struct xapi_%s *' % self.tag
        if k == 'option':
            return 'const %s*' % self.elem.ctype()
        return self.ctype()


def parse_type(s, model):
    s = s.strip()
    if s.endswith(' set'):
        return Type('set', s, elem=parse_type(s[:-4], model))
    if s.endswith(' option'):
        return Type('option', s, elem=parse_type(s[:-7], model))
    if s.endswith(' map'):
        inner = s[:-4].strip()
        if not (inner.startswith('(') and inner.endswith(')')):
            die('bad map type ' + s)
        inner = inner[1:-1]
        depth, split = 0, None
        for i in range(len(inner) - 1):
            c = inner[i]
            if c == '(':
                depth += 1
            elif c == ')':
                depth -= 1
            elif inner[i:i + 4] == ' -> ' and depth == 0:
                split = i
                break
        if split is None:
            die('bad map type ' + s)
        return Type('map', s, key=parse_type(inner[:split], model),
                    elem=parse_type(inner[split + 4:], model))
    if s.endswith(' ref'):
        return Type('ref', s, cls=s[:-4])
    if s.endswith(' record'):
        return Type('record', s, cls=s[:-7])
    if s.startswith('enum '):
        name = s[5:]
        if name not in model['enums']:
            die('unknown enum ' + name)
        return Type('enum', s, enum=name)
    if s in ('string', 'int', 'float', 'bool', 'datetime'):
        return Type(s, s)
    die('unknown type ' + s)


def in_db(c):
    """False for a class xapi declares in_db:false with fields (data_source):
    records carried in results, never kept in the store, no implicit messages."""
    return c.get('in_db', True)


def representable(t, classes):
    """Whether a type can be carried by the generic runtime (records of classes
    outside our model cannot)."""
    if t.kind == 'record':
        return t.cls in classes
    if t.kind in ('set', 'option'):
        return representable(t.elem, classes)
    if t.kind == 'map':
        return representable(t.key, classes) and representable(t.elem, classes)
    return True


def default_json(f, t):
    """The schema default, as JSON text the runtime decodes with the type."""
    if 'default' not in f:
        return None
    d = f['default']
    k = t.kind
    if k == 'string':
        if d.startswith('"') and d.endswith('"'):
            return json.dumps(d[1:-1])
        return json.dumps(d)
    if k == 'ref':
        return json.dumps('OpaqueRef:NULL' if d in ('Null', 'OpaqueRef:NULL', '') else d)
    if k in ('int',):
        return str(int(d))
    if k == 'float':
        return repr(float(d.rstrip('.') or '0'))
    if k == 'bool':
        return 'true' if d == 'true' else 'false'
    if k == 'datetime':
        return json.dumps(d)
    if k == 'enum':
        return json.dumps(d)
    if k in ('set', 'map'):
        if d in ('{}', '[]', ''):
            return '{}' if k == 'map' else '[]'
        if k == 'set' and d.startswith('{') and d.endswith('}'):
            items = [x.strip().strip('"') for x in d[1:-1].split(';') if x.strip()]
            items = [x for i in items for x in i.split(',') if x.strip()]
            return json.dumps([x.strip().strip('"') for x in items])
        if k == 'map' and d.startswith('{') and d.endswith('}'):
            pairs = re.findall(r'"([^"]*)"\s*->\s*"([^"]*)"', d) or \
                re.findall(r'\(\s*"([^"]*)"\s*,\s*"([^"]*)"\s*\)', d)
            return json.dumps(dict(pairs))
        die('cannot read default %r of %s' % (d, t.name))
    if k == 'option':
        return None
    die('default for ' + k)


def load(dm_dir):
    model = {'classes': {}, 'order': [], 'enums': {}, 'errors': []}
    for fn in sorted(os.listdir(dm_dir)):
        if not fn.endswith('.json'):
            continue
        with open(os.path.join(dm_dir, fn)) as fp:
            d = json.load(fp)
        if fn == 'errors.json':
            model['errors'] = d['errors']
            continue
        if fn == 'rbac.json':
            model['extra_permissions'] = d['permissions']
            continue
        name = d['class']
        if fn != name + '.json':
            die('%s must hold class %s' % (fn, name))
        for en, vals in d.get('enums', {}).items():
            if en in model['enums'] and model['enums'][en] != vals:
                die('enum %s differs between classes' % en)
            model['enums'][en] = vals
        model['classes'][name] = d
    # A stable order: the order clients see in system.listMethods and events.
    model['order'] = sorted(model['classes'], key=lambda c: (c.lower(), c))
    return model


def prepare(model):
    classes = model['classes']
    for cname in model['order']:
        c = classes[cname]
        c['lower'] = lower(cname)
        if not c.get('stored', True):
            c['fields_t'] = []
            continue
        fs = []
        for f in c['fields']:
            t = parse_type(f['type'], model)
            if not representable(t, classes):
                die('%s.%s: type %s not representable' % (cname, f['name'], f['type']))
            f['t'] = t
            f['cname'] = cident(f['name'])
            f['djson'] = default_json(f, t)
            inv = f.get('inverse')
            if inv:
                ic, ifld = inv.split('.')
                if ic not in classes:
                    f['inverse'] = None  # the other side is not in our model: always empty
                else:
                    f['inverse'] = inv
            fs.append(f)
        c['fields_t'] = fs
        names = [f['name'] for f in fs]
        if not in_db(c):  # a record with no objects (data_source): no uuid, no lookups
            c['uuid_idx'] = c['name_label_idx'] = -1
            continue
        if 'uuid' not in names:
            die(cname + ' has no uuid')
        c['uuid_idx'] = names.index('uuid')
        # get_by_name_label exists only for the namespaced name.label (pool's is plain)
        c['name_label_idx'] = names.index('name_label') if ('name_label' in names and
                                                            c.get('name_namespace', cname != 'pool')) else -1
    for cname in model['order']:
        c = classes[cname]
        for m in c.get('messages', []):
            m['params_t'] = [parse_type(p[0], model) for p in m['params']]
            special = m.get('status') == 'special'  # rpc/ writes the result itself
            m['result_t'] = None if (m['result'] == 'void' or special) else parse_type(m['result'], model)
            ok = all(representable(t, classes) for t in m['params_t']) and \
                (m['result_t'] is None or representable(m['result_t'], classes))
            if m.get('status') == 'built' and not ok:
                die('%s.%s is built but its types are not representable' % (cname, m['name']))
            if not ok and m.get('status') != 'special':
                m['status'] = 'todo'


# ----------------------------------------------------------------------------- types

def collect_types(model):
    """Every distinct type used by a field or message, inner types first."""
    seen = {}
    order = []

    def visit(t):
        for sub in (t.key, t.elem):
            if sub is not None:
                visit(sub)
        if t.desc_tag not in seen:
            seen[t.desc_tag] = t
            order.append(t)

    for cname in model['order']:
        c = model['classes'][cname]
        for f in c['fields_t']:
            visit(f['t'])
        for m in c.get('messages', []):
            for t in m['params_t']:
                if representable(t, model['classes']):
                    visit(t)
            if m.get('status') in ('todo', 'special'):
                continue
            if m['result_t'] is not None:
                visit(m['result_t'])
    # implicit messages' types
    for cname in model['order']:
        c = model['classes'][cname]
        if not c.get('stored', True) or not in_db(c):
            continue
        visit(Type('ref', cname + ' ref', cls=cname))
        visit(Type('set', cname + ' ref set', elem=Type('ref', cname + ' ref', cls=cname)))
        visit(Type('record', cname + ' record', cls=cname))
        visit(Type('map', '(%s ref -> %s record) map' % (cname, cname),
                   key=Type('ref', cname + ' ref', cls=cname),
                   elem=Type('record', cname + ' record', cls=cname)))
    for base in ('string', 'int', 'float', 'bool', 'datetime'):
        visit(Type(base, base))
    visit(parse_type('string set', model))
    visit(parse_type('(string -> string) map', model))
    return order


def header_line(what):
    return '/* Generated by gen/vgen.py from datamodel/%s. DO NOT EDIT. */\n' % what


def write_model_h(model, types, out):
    w = []
    w.append(header_line('<class>.json'))
    w.append('#ifndef VESSEL_XAPI_MODEL_H\n#define VESSEL_XAPI_MODEL_H\n\n')
    w.append('#include <stdbool.h>\n#include <stdint.h>\n\n#include "model/xtype.h"\n\n')
    for en in sorted(model['enums']):
        vals = model['enums'][en]
        w.append('enum xapi_%s {\n' % lower(en))
        for v in vals:
            w.append('    XAPI_%s_%s,\n' % (lower(en).upper(), cident(v).upper()))
        w.append('};\n')
        w.append('extern const struct xenum_desc xapi_enum_%s;\n\n' % lower(en))
    for cname in model['order']:
        if model['classes'][cname].get('stored', True):
            w.append('struct xapi_%s_record;\n' % lower(cname))
    w.append('\n')
    done = set()
    for t in types:
        if t.kind in ('set', 'map') and t.tag not in done:
            done.add(t.tag)
            if t.kind == 'set':
                w.append('struct xapi_%s {\n    size_t n;\n    %sitems;\n};\n' % (
                    t.tag, ptr(t.elem.ctype())))
            else:
                w.append('struct xapi_%s {\n    size_t n;\n    %skeys;\n    %svalues;\n};\n' % (
                    t.tag, ptr(t.key.ctype()), ptr(t.elem.ctype())))
    w.append('\n')
    for cname in model['order']:
        c = model['classes'][cname]
        if not c.get('stored', True):
            continue
        lc = c['lower']
        w.append('struct xapi_%s_record {\n' % lc)
        for f in c['fields_t']:
            w.append('    %s%s;\n' % (f['t'].ctype(), f['cname']))
        w.append('};\n')
        w.append('extern const struct xclass xapi_class_%s;\n' % lc)
        w.append('extern const struct xfield xapi_fields_%s[];\n' % lc)
        w.append('static inline void\nxapi_%s_record_free(struct xapi_%s_record *r)\n{\n'
                 '    xrecord_free(&xapi_class_%s, r);\n}\n' % (lc, lc, lc))
        w.append('static inline void\nxapi_%s_record_freep(struct xapi_%s_record **r)\n{\n'
                 '    xrecord_free(&xapi_class_%s, *r);\n    *r = NULL;\n}\n' % (lc, lc, lc))
        w.append('static inline struct xapi_%s_record *\nxapi_%s_record_new(void)\n{\n'
                 '    return xrecord_new(&xapi_class_%s);\n}\n' % (lc, lc, lc))
        w.append('static inline struct xapi_%s_record *\nxapi_%s_record_copy('
                 'const struct xapi_%s_record *r)\n{\n'
                 '    return xrecord_copy(&xapi_class_%s, r);\n}\n\n' % (lc, lc, lc, lc))
    for t in types:
        w.append('extern const struct xtype xapi_type_%s;\n' % t.desc_tag)
    w.append('\n#endif\n')
    out.write(''.join(w))


def ptr(ctype):
    return ctype.rstrip() + ' *' if not ctype.endswith('*') else ctype + '*'


def write_model_c(model, types, out):
    w = [header_line('<class>.json')]
    w.append('#include <stddef.h>\n#include <string.h>\n#include <strings.h>\n\n'
             '#include "xapi_model.h"\n\n')
    for en in sorted(model['enums']):
        vals = model['enums'][en]
        le = lower(en)
        w.append('static const char *const enum_%s_values[] = {%s};\n' % (
            le, ', '.join(json.dumps(v) for v in vals)))
        w.append('const struct xenum_desc xapi_enum_%s = {"%s", enum_%s_values, %d};\n' % (
            le, en, le, len(vals)))
    w.append('\n')
    for cname in model['order']:
        if model['classes'][cname].get('stored', True):
            w.append('extern const struct xclass xapi_class_%s;\n' % lower(cname))
    for t in types:
        k = t.kind
        kind = {'string': 'XT_STRING', 'int': 'XT_INT', 'float': 'XT_FLOAT', 'bool': 'XT_BOOL',
                'datetime': 'XT_DATETIME', 'enum': 'XT_ENUM', 'ref': 'XT_REF', 'set': 'XT_SET',
                'map': 'XT_MAP', 'record': 'XT_RECORD', 'option': 'XT_OPTION'}[k]
        size = {'set': 'sizeof(struct xset)', 'map': 'sizeof(struct xmap)'}.get(
            k, 'sizeof(%s)' % t.ctype().rstrip())
        parts = ['.kind = %s' % kind, '.name = %s' % json.dumps(t.name), '.size = %s' % size]
        if t.elem is not None:
            parts.append('.elem = &xapi_type_%s' % t.elem.desc_tag)
        if t.key is not None:
            parts.append('.key = &xapi_type_%s' % t.key.desc_tag)
        if k == 'enum':
            parts.append('.en = &xapi_enum_%s' % lower(t.enum))
        if k in ('ref', 'record'):
            parts.append('.ref_class = %s' % json.dumps(t.cls))
            if t.cls in model['classes'] and model['classes'][t.cls].get('stored', True):
                parts.append('.cls = &xapi_class_%s' % lower(t.cls))
        w.append('const struct xtype xapi_type_%s = {%s};\n' % (t.desc_tag, ', '.join(parts)))
    w.append('\n')
    stored = [c for c in model['order'] if model['classes'][c].get('stored', True)]
    in_store = [c for c in stored if in_db(model['classes'][c])]
    for cname in stored:
        c = model['classes'][cname]
        i = in_store.index(cname) if cname in in_store else 0
        lc = c['lower']
        w.append('const struct xfield xapi_fields_%s[] = {\n' % lc)
        for f in c['fields_t']:
            flags = []
            if f.get('deprecated'):
                flags.append('XF_DEPRECATED')
            if f.get('removed'):
                flags.append('XF_REMOVED')
            if f.get('internal'):
                flags.append('XF_INTERNAL')
            if f['q'] in ('SRO', 'RW') and f['djson'] is None and not f.get('inverse') \
                    and f['name'] != 'uuid':
                flags.append('XF_MANDATORY')
            inv_c, inv_f = (f['inverse'].split('.') if f.get('inverse') else (None, None))
            w.append('    {%s, &xapi_type_%s, offsetof(struct xapi_%s_record, %s), XQ_%s, %s, %s, %s, %s},\n' % (
                json.dumps(f['name']), f['t'].desc_tag, lc, f['cname'], f['q'],
                ' | '.join(flags) or '0',
                json.dumps(f['djson']) if f['djson'] is not None else 'NULL',
                json.dumps(inv_c) if inv_c else 'NULL', json.dumps(inv_f) if inv_f else 'NULL'))
        w.append('};\n')
        w.append('const struct xclass xapi_class_%s = {\n    .name = "%s", .lower = "%s", .id = %d,\n'
                 '    .record_size = sizeof(struct xapi_%s_record), .fields = xapi_fields_%s,\n'
                 '    .n_fields = %d, .uuid_field = %d, .name_label_field = %d,\n'
                 '    .ctor = %s, .get_all = %s, .events = %s, .stored = %s,\n'
                 '    .default_role = "%s",\n};\n\n' % (
                     lc, cname, cname.lower(), i, lc, lc, len(c['fields_t']), c['uuid_idx'],
                     c['name_label_idx'], b(c.get('ctor')), b(c.get('get_all')),
                     b(c.get('events', True)), b(in_db(c)), SETTER_ROLE.get(cname, 'pool-operator')))
    w.append('const struct xclass *const xapi_classes[] = {\n')
    for cname in in_store:
        w.append('    &xapi_class_%s,\n' % lower(cname))
    w.append('};\nconst size_t xapi_n_classes = %d;\n\n' % len(in_store))
    w.append('const struct xclass *\nxapi_class_by_name(const char *name)\n{\n'
             '    for (size_t i = 0; i < xapi_n_classes; i++)\n'
             '        if (strcmp(xapi_classes[i]->name, name) == 0)\n'
             '            return xapi_classes[i];\n    return NULL;\n}\n\n'
             'const struct xclass *\nxapi_class_by_name_ci(const char *name)\n{\n'
             '    for (size_t i = 0; i < xapi_n_classes; i++)\n'
             '        if (strcasecmp(xapi_classes[i]->name, name) == 0)\n'
             '            return xapi_classes[i];\n    return NULL;\n}\n')
    out.write(''.join(w))


def b(v):
    return 'true' if v else 'false'


# ----------------------------------------------------------------------------- errors

def write_errors(model, out_h, out_c):
    h = [header_line('errors.json'), '#ifndef VESSEL_XAPI_ERRORS_H\n#define VESSEL_XAPI_ERRORS_H\n\n',
         '#include "model/xerr.h"\n\n']
    setters = []
    for e in model['errors']:
        setters.append((e['code'], 'xerr_' + e['code'].lower(), e['params']))
        # xapi also raises some codes with no parameter at all
        # (SR_OPERATION_NOT_SUPPORTED [] from SR.probe_ext): xerr_<code>_bare
        if e.get('bare'):
            setters.append((e['code'], 'xerr_' + e['code'].lower() + '_bare', []))
        # a longer form xapi also raises (INVALID_VALUE [field, value, reason])
        if e.get('longer'):
            setters.append((e['code'], 'xerr_' + e['code'].lower() + '_' + e['longer'][-1],
                            e['longer']))
    for code, fn, params in setters:
        ps = []
        for i, p in enumerate(params):
            n = cident(p) if p else 'p%d' % i
            if n in C_KEYWORDS or n in ps:
                n = n + '_%d' % i
            ps.append(n)
        sig = ''.join(', const char *%s' % p for p in ps)
        arr = '(const char *[]){%s}' % ', '.join(ps) if ps else 'NULL'
        h.append('static inline bool\n%s_at(struct xerr **errp, const char *file, int line%s)\n{\n'
                 '    return xerr_set_at(errp, file, line, "%s", %d, %s);\n}\n' % (
                     fn, sig, code, len(ps), arr))
        args = ''.join(', ' + p for p in ps)
        h.append('#define %s(errp%s) %s_at((errp), __FILE__, __LINE__%s)\n' % (fn, args, fn, args))
    h.append('\nextern const char *const xapi_error_codes[];\nextern const unsigned char xapi_error_arity[];\n'
             'extern const size_t xapi_n_error_codes;\n\n#endif\n')
    out_h.write(''.join(h))
    c = [header_line('errors.json'), '#include <stddef.h>\n\n#include "xapi_errors.h"\n\n',
         'const char *const xapi_error_codes[] = {\n']
    for e in model['errors']:
        c.append('    "%s",\n' % e['code'])
    c.append('};\nconst unsigned char xapi_error_arity[] = {\n')
    for e in model['errors']:
        c.append('    %d,\n' % len(e['params']))
    c.append('};\nconst size_t xapi_n_error_codes = %d;\n' % len(model['errors']))
    out_c.write(''.join(c))


# ----------------------------------------------------------------------------- messages

def handler_name(cname, mname):
    return 'api_%s_%s' % (lower(cname), cident(mname))


def handler_signature(cname, m):
    ps = ['struct call_ctx *ctx']
    for (p, t) in zip(m['params'], m['params_t']):
        n = cident(p[1])
        if n in C_KEYWORDS:
            n = n + '_'
        ps.append('%s%s' % (t.param_ctype(), n))
    if m['result_t'] is not None:
        ps.append('%sresult' % ptr(m['result_t'].ctype()))
    ps.append('struct xerr **errp')
    return 'bool\n%s(%s)' % (handler_name(cname, m['name']), ', '.join(ps))


def write_handlers_h(model, out):
    w = [header_line('<class>.json'), '#ifndef VESSEL_XAPI_HANDLERS_H\n#define VESSEL_XAPI_HANDLERS_H\n\n',
         '#include "xapi_model.h"\n#include "xapi_errors.h"\n\nstruct call_ctx;\n\n']
    w.append('/* One per explicit message whose status is "built". Each returns true on\n'
             ' * success with *result (when the message has one) owned by the caller, or\n'
             ' * false with *errp set. Parameters are borrowed for the call. */\n')
    for cname in model['order']:
        for m in model['classes'][cname].get('messages', []):
            if m.get('status') == 'built':
                w.append(handler_signature(cname, m).replace('\n', ' ') + ';\n')
    used = forward_kinds(model)
    if used:
        w.append('\n/* The host that runs a message with a "forward" key, found from one of its\n'
                 ' * arguments (a ref): *host owned by the caller, NULL for this host. */\n')
    for by in used:
        w.append('bool api_forward_by_%s(struct call_ctx *ctx, const char *ref, char **host, '
                 'struct xerr **errp);\n' % by)
    w.append('\n#endif\n')
    out.write(''.join(w))


# How a message names the host that runs it (datamodel/README.md "forward"):
# api/forward.c defines api_forward_by_<kind>() for each.
FORWARD_BY = ['vm', 'vm_srs', 'placement', 'host', 'VBD', 'VIF', 'PBD', 'PIF', 'SR', 'VDI', 'task']


def forward_resolver(cname, m):
    """The generated resolver of a message's "forward" key: which argument
    (a ref, or a ref field of a record argument: "args.SR") and how."""
    f = m['forward']
    by, param = f.get('by'), f.get('param', '')
    if by not in FORWARD_BY:
        die('%s.%s: forward by %r: one of %s' % (cname, m['name'], by, FORWARD_BY))
    pname, _, member = param.partition('.')
    names = [p[1] for p in m['params']]
    if pname not in names:
        die('%s.%s: forward param %r is not a parameter' % (cname, m['name'], pname))
    t = m['params_t'][names.index(pname)]
    if (t.kind != 'ref') == (not member) or (member and t.kind != 'record'):
        die('%s.%s: forward param %r must be a ref or a record\'s field' % (
            cname, m['name'], param))
    fn = 'fwd_%s_%s' % (lower(cname), cident(m['name']))
    body = ('static bool\n%s(struct call_ctx *ctx, struct xval *const *args, char **host, '
            'struct xerr **errp)\n{\n'
            '    const char *ref = forward_arg(args[%d], %s);\n'
            '    return !ref || api_forward_by_%s(ctx, ref, host, errp);\n}\n\n' % (
                fn, names.index(pname), json.dumps(member) if member else 'NULL', by))
    return fn, body


def forward_kinds(model):
    """The forward kinds the model uses, in FORWARD_BY's order."""
    used = {m['forward'].get('by') for c in model['classes'].values()
            for m in c.get('messages', []) if m.get('forward')}
    return [k for k in FORWARD_BY if k in used]


FORWARD_ARG = '''/* A forwarded message's ref argument, or a ref field of its record
 * argument; NULL when it is not a string (the handler then rejects it). */
static const char *
forward_arg(const struct xval *v, const char *member)
{
    if (v && member)
        v = v->kind == XVAL_STRUCT ? xval_struct_get(v, member) : NULL;
    return v && v->kind == XVAL_STRING ? v->str.s : NULL;
}

'''


def implicit_messages(model, cname):
    """(name, kind, field, params[(type, name)], result type string, role, async)"""
    c = model['classes'][cname]
    out = []
    if not c.get('stored', True) or not in_db(c):
        return out
    ref = cname + ' ref'
    # A class may keep its reads above read-only (secret: pool-operator, as xapi's
    # implicit_messages_allowed_roles in ocaml/idl/datamodel.ml).
    ro = c.get('read_role', 'read-only')
    out.append(('get_record', 'XM_GET_RECORD', None, [(ref, 'self')], cname + ' record', ro, False))
    out.append(('get_by_uuid', 'XM_GET_BY_UUID', None, [('string', 'uuid')], ref, ro, False))
    if c['name_label_idx'] >= 0:
        out.append(('get_by_name_label', 'XM_GET_BY_NAME_LABEL', None, [('string', 'label')],
                    ref + ' set', ro, False))
    if c.get('get_all'):
        out.append(('get_all', 'XM_GET_ALL', None, [], ref + ' set', ro, False))
        out.append(('get_all_records', 'XM_GET_ALL_RECORDS', None, [],
                    '(%s -> %s record) map' % (ref, cname), ro, False))
        out.append(('get_all_where', 'XM_GET_ALL_WHERE', None, [('string', 'expr')],
                    ref + ' set', ro, False))
        out.append(('get_all_records_where', 'XM_GET_ALL_RECORDS_WHERE', None,
                    [('string', 'expr')], '(%s -> %s record) map' % (ref, cname), ro, False))
    setter_role = SETTER_ROLE.get(cname, 'pool-operator')
    if c.get('ctor'):
        out.append(('create', 'XM_CREATE', None, [(cname + ' record', 'args')], ref, setter_role, True))
        out.append(('destroy', 'XM_DESTROY', None, [(ref, 'self')], None, setter_role, True))
    for f in c['fields_t']:
        fn = f['name']
        if f.get('internal'):
            continue  # kept in the store, never on the wire
        out.append(('get_' + fn, 'XM_GET_FIELD', f, [(ref, 'self')], f['type'], ro, False))
        if f['q'] != 'RW':
            continue
        out.append(('set_' + fn, 'XM_SET_FIELD', f, [(ref, 'self'), (f['type'], 'value')], None,
                    setter_role, False))
        t = f['t']
        if t.kind == 'map':
            out.append(('add_to_' + fn, 'XM_MAP_ADD', f,
                        [(ref, 'self'), (t.key.name, 'key'), (t.elem.name, 'value')], None,
                        setter_role, False))
            out.append(('remove_from_' + fn, 'XM_MAP_REMOVE', f, [(ref, 'self'), (t.key.name, 'key')],
                        None, setter_role, False))
        if t.kind == 'set' and not f.get('inverse'):
            out.append(('add_' + fn, 'XM_SET_ADD', f, [(ref, 'self'), (t.elem.name, 'value')], None,
                        setter_role, False))
            out.append(('remove_' + fn, 'XM_SET_REMOVE', f, [(ref, 'self'), (t.elem.name, 'value')],
                        None, setter_role, False))
    return out


def write_dispatch(model, out):
    w = [header_line('<class>.json')]
    w.append('#include <stddef.h>\n#include <stdlib.h>\n#include <string.h>\n\n'
             '#include "common/xval.h"\n#include "model/xmsg.h"\n#include "xapi_handlers.h"\n\n')
    entries = []  # (wire, cls, name, kind, field, params, result, role, session, async, flags, call)
    wrappers = [FORWARD_ARG] if forward_kinds(model) else []
    for cname in model['order']:
        c = model['classes'][cname]
        lc = c['lower']
        # status "implicit": the model declares it by hand, but the generic one is right
        explicit = {m['name']: m for m in c.get('messages', []) if m.get('status') != 'implicit'}
        cls_ref = '&xapi_class_%s' % lc if c.get('stored', True) else 'NULL'
        for (name, kind, f, params, result, role, async_) in implicit_messages(model, cname):
            if name in explicit:
                continue  # a hand-written message of the same name takes its place
            entries.append(dict(wire='%s.%s' % (cname, name), cls=cls_ref, name=name, kind=kind,
                                field=('&xapi_fields_%s[%d]' % (lc, c['fields_t'].index(f))) if f else 'NULL',
                                params=[(parse_type(t, model), n, None) for (t, n) in params],
                                result=parse_type(result, model) if result else None,
                                role=role, session=True, async_=async_, flags=0, call='NULL',
                                forward='NULL'))
        for m in c.get('messages', []):
            status = m.get('status', 'todo')
            fields = [f['name'] for f in c.get('fields_t', [])]
            if status == 'implicit' and m['name'].startswith('set_') and m['name'][4:] in fields:
                # a hand-declared setter of a non-RW field whose meaning is the
                # plain write: the generic setter serves it, with its role
                f = c['fields_t'][fields.index(m['name'][4:])]
                entries.append(dict(wire='%s.%s' % (cname, m['name']), cls=cls_ref, name=m['name'],
                                    kind='XM_SET_FIELD',
                                    field='&xapi_fields_%s[%d]' % (lc, c['fields_t'].index(f)),
                                    params=[(t, p[1], None) for (p, t) in zip(m['params'], m['params_t'])],
                                    result=None, role=m.get('role', 'pool-admin'), session=True,
                                    async_=False, flags='0', call='NULL', forward='NULL'))
                continue
            if status == 'implicit':
                continue
            if status == 'removed' and not m.get('removed'):
                die('%s.%s: status removed needs "removed": true' % (cname, m['name']))
            # todo answers NOT_IMPLEMENTED, removed MESSAGE_REMOVED (XMF_REMOVED)
            kind = {'built': 'XM_EXPLICIT', 'special': 'XM_SPECIAL'}.get(status, 'XM_TODO')
            flags = []
            if m.get('deprecated'):
                flags.append('XMF_DEPRECATED')
            if m.get('removed'):
                flags.append('XMF_REMOVED')
            call = 'NULL'
            forward = 'NULL'
            if status == 'built':
                call = 'call_%s_%s' % (lc, cident(m['name']))
                wrappers.append(wrapper(cname, m, call))
            if m.get('forward'):
                if status != 'built':
                    die('%s.%s: forward on a message that is not built' % (cname, m['name']))
                forward, body = forward_resolver(cname, m)
                wrappers.append(body)
            ps = []
            for (p, t) in zip(m['params'], m['params_t']):
                ps.append((t, p[1], json.dumps(p[2]) if len(p) > 2 else None))
            entries.append(dict(wire='%s.%s' % (cname, m['name']), cls=cls_ref, name=m['name'],
                                kind=kind, field='NULL', params=ps,
                                result=m['result_t'] if status not in ('todo', 'removed') else None,
                                role=m.get('role', 'pool-admin'), session=m.get('session', True),
                                async_=m.get('async', False), flags=' | '.join(flags) or '0',
                                call=call, forward=forward, hidden=m.get('hidden', False)))
    w.extend(wrappers)
    entries.sort(key=lambda e: e['wire'])
    for i, e in enumerate(entries):
        if e['params']:
            w.append('static const struct xmsg_param params_%d[] = {\n' % i)
            for (t, n, d) in e['params']:
                # a todo message may name types we cannot carry: it is never decoded
                tref = '&xapi_type_%s' % t.desc_tag if representable(t, model['classes']) else 'NULL'
                w.append('    {%s, %s, %s},\n' % (
                    json.dumps(n), tref, json.dumps(d) if d is not None else 'NULL'))
            w.append('};\n')
    w.append('\nconst struct xmsg xapi_messages[] = {\n')
    for i, e in enumerate(entries):
        n_req = len([p for p in e['params'] if p[2] is None])
        res = '&xapi_type_%s' % e['result'].desc_tag if e['result'] is not None else 'NULL'
        w.append('    {"%s", %s, "%s", %s, %s, %s, %d, %d, %s, XR_%s, %s, %s, %s, %s, %s},\n' % (
            e['wire'], e['cls'], e['name'], e['kind'], e['field'],
            'params_%d' % i if e['params'] else 'NULL', len(e['params']), n_req, res,
            e['role'].upper().replace('-', '_'), b(e['session']), b(e['async_']), e['flags'],
            e['call'], e['forward']))
    w.append('};\nconst size_t xapi_n_messages = %d;\n' % len(entries))
    w.append(permissions_table(model, entries))
    out.write(''.join(w))
    return entries


def permission_uuid(name):
    """xapi's gen_rbac.ml: a permission's uuid is the MD5 of its name (as
    written, before lower-casing) laid out as a uuid."""
    h = hashlib.md5(name.encode()).hexdigest()
    return '%s-%s-%s-%s-%s' % (h[:8], h[8:12], h[12:16], h[16:20], h[20:])


def permissions_table(model, entries):
    """The static permissions (xapi's rbac_static.ml, written by gen_rbac.ml):
    one per synchronous wire name of every message, plus datamodel/rbac.json's
    (http actions, task.destroy/any), each with the least role holding it; a
    role holds every permission whose least role is at or below it. The name
    label is the lower-cased name ("vm.start", as xapi's GUI team asked)."""
    perms = [(e['wire'], e['role']) for e in entries]
    perms += [tuple(p) for p in model.get('extra_permissions', [])]
    seen = set()
    w = ['\n/* Static RBAC permissions, sorted by name label. */\n'
         'const struct xperm xapi_permissions[] = {\n']
    for (name, role) in sorted(perms, key=lambda p: p[0].lower()):
        label = name.lower()
        if label in seen:
            die('permission %s twice' % label)
        seen.add(label)
        w.append('    {"%s", "%s", XR_%s},\n' % (label, permission_uuid(name),
                                               role.upper().replace('-', '_')))
    w.append('};\nconst size_t xapi_n_permissions = %d;\n' % len(perms))
    return ''.join(w)


def wrapper(cname, m, call):
    lines = ['static bool\n%s(struct call_ctx *ctx, struct xval *const *args, '
             'struct wire_writer *out, struct xerr **errp)\n{\n' % call]
    names = []
    for i, (p, t) in enumerate(zip(m['params'], m['params_t'])):
        n = cident(p[1])
        if n in C_KEYWORDS:
            n = n + '_'
        names.append((n, t))
        lines.append('    %s%s;\n' % (t.ctype(), n))
    if m['result_t'] is not None:
        lines.append('    %sresult;\n' % m['result_t'].ctype())
    ok_cleanup = []
    for i, (n, t) in enumerate(names):
        # A hand-written create takes its record with the constructor's rules.
        decode = 'xtype_ctor_decode' if (m['name'] == 'create' and t.kind == 'record') \
            else 'xtype_arg_decode'
        lines.append('    if (!%s(&xapi_type_%s, args[%d], &%s, "%s", errp)) {\n' % (
            decode, t.desc_tag, i, n, n.rstrip('_')))
        for (pn, pt) in reversed(ok_cleanup):
            lines.append('        xtype_value_clear(&xapi_type_%s, &%s);\n' % (pt.desc_tag, pn))
        lines.append('        return false;\n    }\n')
        ok_cleanup.append((n, t))
    args = ['ctx']
    for (n, t) in names:
        if t.kind in ('set', 'map'):
            args.append('&' + n)
        else:
            args.append(n)
    if m['result_t'] is not None:
        lines.append('    memset(&result, 0, sizeof(result));\n')
        args.append('&result')
    args.append('errp')
    lines.append('    bool ok = %s(%s);\n' % (handler_name(cname, m['name']), ', '.join(args)))
    if m['result_t'] is not None:
        lines.append('    if (ok)\n        xtype_value_encode(&xapi_type_%s, &result, out);\n'
                     '    xtype_value_clear(&xapi_type_%s, &result);\n' % (
                         m['result_t'].desc_tag, m['result_t'].desc_tag))
    else:
        lines.append('    if (ok)\n        wire_string(out, "");\n')
    for (pn, pt) in reversed(ok_cleanup):
        lines.append('    xtype_value_clear(&xapi_type_%s, &%s);\n' % (pt.desc_tag, pn))
    lines.append('    return ok;\n}\n\n')
    return ''.join(lines)


# ----------------------------------------------------------------------------- client

# Names the client stubs use for themselves: a parameter so named gets a '_'.
CLIENT_LOCALS = {'xc', 'call', 'result', 'errp'}


def write_client(model, entries, out_h, out_c):
    """Client stubs: one function per built or implicit message, encoding typed
    arguments and decoding the typed result through a transport callback."""
    h = [header_line('<class>.json'), '#ifndef VESSEL_XAPI_CLIENT_H\n#define VESSEL_XAPI_CLIENT_H\n\n',
         '#include "xapi_model.h"\n#include "client/xclient.h"\n\n']
    c = [header_line('<class>.json'), '#include <string.h>\n\n#include "xapi_client.h"\n\n']
    for e in entries:
        if e['kind'] in ('XM_TODO', 'XM_SPECIAL'):
            continue
        fname = 'xc_' + cident(e['wire'].replace('.', '_')).lower()
        ps = ['struct xclient *xc']
        for (t, n, d) in e['params']:
            pn = cident(n)
            if pn in C_KEYWORDS or pn in CLIENT_LOCALS:
                pn += '_'
            ps.append('%s%s' % (t.param_ctype(), pn))
        if e['result'] is not None:
            ps.append('%sresult' % ptr(e['result'].ctype()))
        ps.append('struct xerr **errp')
        sig = 'bool\n%s(%s)' % (fname, ', '.join(ps))
        h.append(sig.replace('\n', ' ') + ';\n')
        body = ['%s\n{\n' % sig, '    struct xclient_call call;\n',
                '    xclient_call_begin(xc, &call, "%s", %s);\n' % (e['wire'], b(e['session']))]
        for (t, n, d) in e['params']:
            pn = cident(n)
            if pn in C_KEYWORDS or pn in CLIENT_LOCALS:
                pn += '_'
            ref = pn if t.kind not in ('int', 'float', 'bool', 'datetime', 'enum') else '&' + pn
            if t.kind in ('string', 'ref'):
                ref = '&' + pn
            if t.kind == 'record':
                ref = pn
            body.append('    xclient_call_arg(&call, &xapi_type_%s, %s);\n' % (t.desc_tag, ref))
        if e['result'] is not None:
            body.append('    return xclient_call_finish(&call, &xapi_type_%s, result, errp);\n}\n\n'
                        % e['result'].desc_tag)
        else:
            body.append('    return xclient_call_finish(&call, NULL, NULL, errp);\n}\n\n')
        c.extend(body)
    h.append('\n#endif\n')
    out_h.write(''.join(h))
    out_c.write(''.join(c))


# ----------------------------------------------------------------------------- docs

def write_docs(model, entries, docs_dir):
    os.makedirs(docs_dir, exist_ok=True)
    by_class = {}
    for e in entries:
        by_class.setdefault(e['wire'].split('.')[0], []).append(e)
    index = ['# Vessel XenAPI reference\n\n', 'Generated by gen/vgen.py from datamodel/. '
             'Every class, field and message clients can call; `todo` marks a message that '
             'answers NOT_IMPLEMENTED in this build.\n\n']
    for cname in model['order']:
        c = model['classes'][cname]
        msgs = by_class.get(cname, [])
        built = len([e for e in msgs if e['kind'] != 'XM_TODO'])
        index.append('- [%s](%s.md): %d fields, %d messages (%d built)\n' % (
            cname, cname, len(c.get('fields', [])), len(msgs), built))
        p = ['# %s\n\n' % cname]
        if c.get('doc'):
            p.append(c['doc'] + '\n\n')
        if c.get('fields_t'):
            p.append('## Fields\n\n| field | type | qualifier | default |\n|---|---|---|---|\n')
            for f in [f for f in c['fields_t'] if not f.get('internal')]:
                p.append('| %s | `%s` | %s | %s |\n' % (f['name'], f['type'], f['q'],
                                                       ('`%s`' % f['djson']) if f['djson'] else ''))
        p.append('\n## Messages\n\n| message | parameters | result | role | async | status |\n'
                 '|---|---|---|---|---|---|\n')
        for e in msgs:
            if e.get('hidden'):
                continue  # xapi's hide_from_docs (session.slave_login)
            params = ', '.join('%s `%s`' % (n, t.name) for (t, n, d) in e['params'])
            status = {'XM_TODO': 'todo', 'XM_SPECIAL': 'built'}.get(e['kind'], 'built')
            res = e['result'].name if e['result'] is not None else 'void'
            p.append('| %s | %s | `%s` | %s | %s | %s |\n' % (
                e['name'], params, res, e['role'], 'yes' if e['async_'] else '', status))
        with open(os.path.join(docs_dir, cname + '.md'), 'w') as fp:
            fp.write(''.join(p))
    with open(os.path.join(docs_dir, 'README.md'), 'w') as fp:
        fp.write(''.join(index))


def main(argv):
    if len(argv) < 3:
        die('usage: vgen.py DATAMODEL_DIR OUT_DIR [--docs DIR]')
    model = load(argv[1])
    prepare(model)
    types = collect_types(model)
    od = argv[2]
    os.makedirs(od, exist_ok=True)

    def opened(name):
        return open(os.path.join(od, name), 'w')

    with opened('xapi_model.h') as f:
        write_model_h(model, types, f)
    with opened('xapi_model.c') as f:
        write_model_c(model, types, f)
    with opened('xapi_errors.h') as fh, opened('xapi_errors.c') as fc:
        write_errors(model, fh, fc)
    with opened('xapi_handlers.h') as f:
        write_handlers_h(model, f)
    with opened('xapi_dispatch.c') as f:
        entries = write_dispatch(model, f)
    with opened('xapi_client.h') as fh, opened('xapi_client.c') as fc:
        write_client(model, entries, fh, fc)
    if '--docs' in argv:
        write_docs(model, entries, argv[argv.index('--docs') + 1])


if __name__ == '__main__':
    main(sys.argv)
