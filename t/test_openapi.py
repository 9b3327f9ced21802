"""docs/openapi.yaml against the code: the router's table of routes in
src/ngx_chat_requests.c (every route, its path parameters, the fields of
its query and body with their types, bounds and required ones), the error
codes of docs/api.md and src/ngx_chat_http.c, and live answers of the real
server, each validated against the schema the document gives for its route
and status.

The comparisons are functions of what was parsed, so that the tests can
feed them a planted mismatch and show that they notice it.  The validator
is a small one of our own (types, nullable, required and unknown
properties, enums, bounds, formats, $ref, allOf, oneOf and anyOf):
Debian's python3-yaml reads the document, and nothing else is needed.
"""

import copy
import pathlib
import re
import uuid

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
REQUESTS_C = ROOT / 'src' / 'ngx_chat_requests.c'
HTTP_C = ROOT / 'src' / 'ngx_chat_http.c'
API_MD = ROOT / 'docs' / 'api.md'
OPENAPI = ROOT / 'docs' / 'openapi.yaml'

MAX_ID = 2 ** 53 - 1
USER_MAX = 128                  # NGX_CHAT_USER_MAX, src/ngx_chat_args.c
CAPTURE_MAX = 256               # NGX_CHAT_CAPTURE_MAX: a ":name" capture
HTTP_METHODS = ('get', 'put', 'post', 'delete', 'options', 'head', 'patch',
                'trace')


# the route table, read from the C source

def _strip_comments(src):
    return re.sub(r'/\*.*?\*/', ' ', src, flags=re.S)


def parse_requests(path=REQUESTS_C):
    """[route] of ngx_chat_api_routes, each a dict: method, pattern, path
    (as OpenAPI spells it), params {name: 'integer'|'string'}, flags,
    query and body (lists of fields, or None)."""
    src = _strip_comments(path.read_text())
    src = src.replace('\\\n', ' ')         # macros on one line

    enums = {name: re.findall(r'"([^"]*)"', body) for name, body in
             re.findall(r'static const char \*const\s+(\w+)\[\]\s*=\s*'
                        r'\{(.*?)\};', src, flags=re.S)}

    macros = dict(re.findall(r'#define\s+(ngx_chat_\w+_fields)\s+(.*)', src))

    field_re = re.compile(r'\{\s*"(\w+)",\s*(NULL|"\w+"),\s*NGX_CHAT_T_(\w+),'
                          r'\s*([\w|]+),\s*(\d+),\s*(\w+)\s*\}')

    def fields_of(body):
        for name, text in macros.items():
            body = body.replace(name, text)
        out = []
        for name, _arg, type_, flags, max_, values in field_re.findall(body):
            out.append({'name': name, 'type': type_,
                        'required': 'NGX_CHAT_REQUIRED' in flags,
                        'nullable': 'NGX_CHAT_NULLABLE' in flags,
                        'max': int(max_),
                        'values': enums[values] if values != 'NULL'
                        else None})
        return out

    tables = {name: fields_of(body) for name, body in
              re.findall(r'static const ngx_chat_field_t\s+(\w+)\[\]\s*=\s*'
                         r'\{(.*?)\n\};', src, flags=re.S)}

    block = re.search(r'ngx_chat_api_routes\[\]\s*=\s*\{(.*?)\n\};', src,
                      flags=re.S).group(1)
    entry_re = re.compile(
        r'\{\s*NGX_CHAT_(GET|POST|PUT|PATCH|DELETE),\s*"([^"]*)",\s*'
        r'(?:ngx_chat_api_action\(\s*(\w+),\s*(\w+),\s*(\w+)\s*\)'
        r'|&\(ngx_chat_api_route_t\)\s*\{\s*(\w+),\s*([\w|]+),\s*(\w+),'
        r'\s*(\w+)\s*\})\s*\}', flags=re.S)

    routes = []
    for m in entry_re.finditer(block):
        method, pattern = m.group(1), m.group(2)
        query = m.group(4) or m.group(8)
        body = m.group(5) or m.group(9)
        flags = m.group(7) or '0'
        routes.append({
            'method': method, 'pattern': pattern,
            'path': '/' + re.sub(r'[#:](\w+)', r'{\1}', pattern),
            'params': {name: 'integer' if kind == '#' else 'string'
                       for kind, name in re.findall(r'([#:])(\w+)',
                                                    pattern)},
            'flags': flags.split('|'),
            'query': None if query == 'NULL' else tables[query],
            'body': None if body == 'NULL' else tables[body],
        })

    # an entry written in a shape the pattern does not know must not
    # pass unseen: every method of the block is one parsed route
    assert len(routes) == len(re.findall(r'\{\s*NGX_CHAT_(?:GET|POST|PUT|'
                                         r'PATCH|DELETE)\b', block)), \
        'an entry of ngx_chat_api_routes is not in a shape this test reads'
    return routes


def load_doc(path=OPENAPI):
    with open(path) as f:
        return yaml.safe_load(f)


def resolve(doc, node):
    while isinstance(node, dict) and '$ref' in node:
        ref = node['$ref']
        assert ref.startswith('#/'), ref
        node = doc
        for part in ref[2:].split('/'):
            node = node[part]
    return node


def doc_operations(doc):
    """{(METHOD, path): operation} of the document."""
    return {(method.upper(), path): op
            for path, item in doc.get('paths', {}).items()
            for method, op in item.items() if method in HTTP_METHODS}


def op_parameters(doc, path, method):
    item = doc['paths'][path]
    params = {}
    for p in item.get('parameters', []) + \
            item[method.lower()].get('parameters', []):
        p = resolve(doc, p)
        params[(p['in'], p['name'])] = p
    return params


# the comparisons

def compare_routes(routes, doc):
    """What the route table and the document do not share: each a line
    naming the route."""
    problems = []
    ops = doc_operations(doc)
    table = {(r['method'], r['path']): r for r in routes}

    for key in table:
        if key not in ops:
            problems.append('%s %s is in the route table of '
                            'src/ngx_chat_requests.c but not in '
                            'docs/openapi.yaml' % key)
    for key in ops:
        if key not in table:
            problems.append('%s %s is in docs/openapi.yaml but not in the '
                            'route table of src/ngx_chat_requests.c' % key)

    for key, r in table.items():
        if key not in ops:
            continue
        where = '%s %s' % key
        params = op_parameters(doc, r['path'], r['method'])
        in_path = {name: resolve(doc, p.get('schema', {})).get('type')
                   for (kind, name), p in params.items() if kind == 'path'}
        if in_path != r['params']:
            problems.append(f'{where}: path parameters {in_path} in the '
                            f'document, {r["params"]} in the table')
        for (kind, name), p in params.items():
            if kind == 'path' and not p.get('required'):
                problems.append(f'{where}: path parameter {name} is not '
                                f'required')
        public = 'NGX_CHAT_R_PUBLIC' in r['flags']
        security = ops[key].get('security', doc.get('security'))
        if public != (security == []):
            problems.append(f'{where}: the table says '
                            f'{"no token" if public else "a token"}, the '
                            f'document security {security!r}')
    return problems


def field_problems(doc, field, schema, where):
    """How a schema differs from what a field of the table takes."""
    s = resolve(doc, schema)
    t, out = field['type'], []

    def want(key, value):
        if s.get(key) != value:
            out.append(f'{where}: {key} is {s.get(key)!r}, the table '
                       f'says {value!r}')

    if field['nullable'] != bool(s.get('nullable')):
        out.append(f'{where}: nullable is {bool(s.get("nullable"))}, the '
                   f'table says {field["nullable"]}')

    if t in ('ID', 'SEQ', 'LIMIT'):
        want('type', 'integer')
        want('minimum', 0 if t == 'SEQ' else 1)
        want('maximum', MAX_ID)
    elif t in ('STR', 'TEXT', 'USER', 'ENUM', 'TIME'):
        want('type', 'string')
        if t == 'STR':
            want('maxLength', field['max'])
        elif t == 'TEXT':
            want('maxLength', None)    # chat_message_max, not the table's
        elif t == 'USER':
            want('minLength', 1)
            want('maxLength', USER_MAX)
        elif t == 'ENUM':
            if sorted(s.get('enum') or []) != sorted(field['values']):
                out.append(f'{where}: enum {s.get("enum")}, the table '
                           f'says {field["values"]}')
        else:
            want('format', 'date-time')
    elif t == 'BOOL':
        want('type', 'boolean')
    elif t in ('USERS', 'IDS'):
        want('type', 'array')
        want('maxItems', field['max'])
        item = dict(field, type='USER' if t == 'USERS' else 'ID',
                    nullable=False)
        out += field_problems(doc, item, s.get('items', {}), where + '[]')
    else:
        out.append(f'{where}: the table has a type {t} this test does not '
                   f'know')
    return out


def compare_fields(routes, doc):
    """Where the query and body fields of the document differ from the
    table's: names, required, types and bounds."""
    problems = []
    ops = doc_operations(doc)

    for r in routes:
        key = (r['method'], r['path'])
        if key not in ops:
            continue                    # compare_routes says so
        where = '%s %s' % key
        op = ops[key]

        # the body
        content = resolve(doc, op.get('requestBody', {})).get('content', {})
        json_body = content.get('application/json')
        if r['body'] is None:
            if json_body is not None:
                problems.append(f'{where}: the document has a JSON body, '
                                f'the table none')
        elif json_body is None:
            problems.append(f'{where}: the table has body fields, the '
                            f'document no JSON body')
        else:
            s = resolve(doc, json_body['schema'])
            props = s.get('properties', {})
            names = [f['name'] for f in r['body']]
            if sorted(props) != sorted(names):
                problems.append(f'{where}: body fields {sorted(props)} in '
                                f'the document, {sorted(names)} in the table')
            required = sorted(f['name'] for f in r['body'] if f['required'])
            if sorted(s.get('required', [])) != required:
                problems.append(f'{where}: required body fields '
                                f'{sorted(s.get("required", []))} in the '
                                f'document, {required} in the table')
            if s.get('additionalProperties') is not False:
                problems.append(f'{where}: unknown body fields are refused '
                                f'(400), additionalProperties must be false')
            for f in r['body']:
                if f['name'] in props:
                    problems += field_problems(doc, f, props[f['name']],
                                               f'{where} body.{f["name"]}')

        # the query
        params = {name: p for (kind, name), p in
                  op_parameters(doc, r['path'], r['method']).items()
                  if kind == 'query'}
        fields = r['query'] or []
        names = sorted(f['name'] for f in fields)
        if sorted(params) != names:
            problems.append(f'{where}: query parameters {sorted(params)} in '
                            f'the document, {names} in the table')
        for f in fields:
            p = params.get(f['name'])
            if p is None:
                continue
            if bool(p.get('required')) != f['required']:
                problems.append(f'{where} ?{f["name"]}: required is '
                                f'{bool(p.get("required"))}, the table says '
                                f'{f["required"]}')
            problems += field_problems(doc, f, p.get('schema', {}),
                                       f'{where} ?{f["name"]}')
    return problems


# the validator

DATE_TIME = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?'
                       r'(Z|[+-]\d\d:\d\d)$')
PY_TYPES = {'object': dict, 'array': list, 'string': str, 'boolean': bool,
            'integer': int, 'number': (int, float)}


def validate(doc, schema, value, where='$'):
    """The ways value breaks schema (an OpenAPI 3.0 schema object), as
    lines naming where; [] when it fits."""
    s = resolve(doc, schema)
    errors = []

    # an object or null is oneOf the object and NullValue (see the document)
    for key in ('oneOf', 'anyOf'):
        if key in s:
            found = [validate(doc, sub, value, where) for sub in s[key]]
            fits = sum(not e for e in found)
            if fits == 0 or (key == 'oneOf' and fits > 1):
                errors.append(f'{where}: fits {fits} of the {key} schemas: '
                              + '; '.join(e for f in found for e in f))

    if value is None:
        constrained = {'type', 'allOf', 'properties', 'required', 'enum'}
        if s.get('nullable') or not constrained & set(s):
            return errors
        return errors + [f'{where}: null, and the schema is not nullable']

    for sub in s.get('allOf', []):
        errors += validate(doc, sub, value, where)

    t = s.get('type')
    if t is not None:
        ok = isinstance(value, PY_TYPES[t]) and \
            (t == 'boolean' or not isinstance(value, bool))
        if not ok:
            return errors + [f'{where}: {value!r} is not of type {t}']

    if 'enum' in s and value not in s['enum']:
        errors.append(f'{where}: {value!r} is not one of {s["enum"]}')

    if isinstance(value, str):
        if len(value) < s.get('minLength', 0):
            errors.append(f'{where}: shorter than {s["minLength"]}')
        if 'maxLength' in s and len(value) > s['maxLength']:
            errors.append(f'{where}: longer than {s["maxLength"]}')
        if 'pattern' in s and not re.search(s['pattern'], value):
            errors.append(f'{where}: {value!r} does not match '
                          f'{s["pattern"]}')
        if s.get('format') == 'date-time' and not DATE_TIME.match(value):
            errors.append(f'{where}: {value!r} is not a date-time')

    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if 'minimum' in s and value < s['minimum']:
            errors.append(f'{where}: {value} is below {s["minimum"]}')
        if 'maximum' in s and value > s['maximum']:
            errors.append(f'{where}: {value} is above {s["maximum"]}')

    if isinstance(value, list):
        if len(value) < s.get('minItems', 0):
            errors.append(f'{where}: fewer than {s["minItems"]} items')
        if 'maxItems' in s and len(value) > s['maxItems']:
            errors.append(f'{where}: more than {s["maxItems"]} items')
        if 'items' in s:
            for i, item in enumerate(value):
                errors += validate(doc, s['items'], item, f'{where}[{i}]')

    if isinstance(value, dict):
        props = s.get('properties', {})
        for name in s.get('required', []):
            if name not in value:
                errors.append(f'{where}: lacks {name}')
        for name, v in value.items():
            if name in props:
                errors += validate(doc, props[name], v, f'{where}.{name}')
            elif s.get('additionalProperties') is False:
                errors.append(f'{where}: has {name}, which the schema '
                              f'does not name')
    return errors


# the tests of the document alone

@pytest.fixture(scope='module')
def doc():
    return load_doc()


@pytest.fixture(scope='module')
def routes():
    return parse_requests()


def test_the_table_is_read(routes):
    # t/unit/test_route.c counts the table too; this says the parser saw it
    assert len(routes) >= 37
    assert {'GET', 'POST', 'PUT', 'PATCH', 'DELETE'} == \
        {r['method'] for r in routes}
    send = next(r for r in routes if r['method'] == 'POST'
                and r['pattern'] == 'conversations/#conversation_id/messages')
    assert 'poll_options' in [f['name'] for f in send['body']]
    assert send['params'] == {'conversation_id': 'integer'}


def test_every_route_of_the_table_is_documented_and_nothing_else(routes,
                                                                   doc):
    assert doc['openapi'] == '3.0.3'
    problems = compare_routes(routes, doc)
    assert not problems, '\n'.join(problems)


def test_query_and_body_fields_are_the_tables(routes, doc):
    problems = compare_fields(routes, doc)
    assert not problems, '\n'.join(problems)


def test_the_route_check_fails_on_a_planted_mismatch(routes, doc):
    # a path the document lost
    lost = copy.deepcopy(doc)
    del lost['paths']['/conversations/{conversation_id}/pins']
    problems = compare_routes(routes, lost)
    assert problems == ['GET /conversations/{conversation_id}/pins is in the '
                        'route table of src/ngx_chat_requests.c but not in '
                        'docs/openapi.yaml'], problems

    # one method of a path
    lost = copy.deepcopy(doc)
    del lost['paths']['/conversations/{conversation_id}/messages/'
                      '{message_id}/votes']['delete']
    assert any(p.startswith('DELETE /conversations/{conversation_id}/'
                            'messages/{message_id}/votes is in the route '
                            'table') for p in compare_routes(routes, lost))

    # a route the code does not have
    extra = copy.deepcopy(doc)
    extra['paths']['/conversations/{conversation_id}/export'] = {
        'get': {'responses': {'200': {'description': 'x'}}}}
    assert compare_routes(routes, extra) == [
        'GET /conversations/{conversation_id}/export is in docs/openapi.yaml '
        'but not in the route table of src/ngx_chat_requests.c']

    # a route the table lost
    fewer = [r for r in routes if r['path'] != '/unread']
    assert compare_routes(fewer, doc) == [
        'GET /unread is in docs/openapi.yaml but not in the route table of '
        'src/ngx_chat_requests.c']

    # an id where the table captures a string, and health with a token
    wrong = copy.deepcopy(doc)
    wrong['components']['parameters']['user_id']['schema'] = {
        'type': 'integer'}
    del wrong['paths']['/health']['get']['security']
    problems = compare_routes(routes, wrong)
    assert any('/members/{user_id}: path parameters' in p
               for p in problems), problems
    assert any(p.startswith('GET /health: the table says no token')
               for p in problems), problems


def test_the_field_check_fails_on_a_planted_mismatch(routes, doc):
    bad = copy.deepcopy(doc)
    body = bad['paths']['/conversations/{conversation_id}/members']['post'][
        'requestBody']['content']['application/json']['schema']
    body['properties']['user_ids']['maxItems'] = 100
    body['required'].append('role')
    del bad['paths']['/search']['get']['parameters'][0]         # q
    problems = compare_fields(routes, bad)
    where = 'POST /conversations/{conversation_id}/members'
    assert f'{where} body.user_ids: maxItems is 100, the table says 500' \
        in problems, problems
    assert any(p.startswith(f'{where}: required body fields')
               for p in problems), problems
    assert any(p.startswith('GET /search: query parameters')
               for p in problems), problems


def test_the_document_holds_together(doc):
    """Every $ref resolves, every path template's parameters are defined,
    operation ids are unique, every answer has a description."""
    refs = []

    def walk(node):
        if isinstance(node, dict):
            if '$ref' in node:
                refs.append(node['$ref'])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    for ref in refs:
        assert resolve(doc, {'$ref': ref}) is not None, ref

    ids = [op['operationId'] for op in doc_operations(doc).values()]
    assert len(ids) == len(set(ids))
    for (method, path), op in doc_operations(doc).items():
        names = set(re.findall(r'\{(\w+)\}', path))
        defined = {name for (kind, name) in op_parameters(doc, path, method)
                   if kind == 'path'}
        assert names == defined, (method, path)
        for status, answer in op['responses'].items():
            assert resolve(doc, answer).get('description'), \
                (method, path, status)


def test_the_error_codes_are_those_of_the_docs_and_the_code(doc):
    schemas = doc['components']['schemas']
    codes = schemas['ErrorCode']['enum']

    def narrowed(status):
        s = schemas.get(f'Error{status}')
        if s is None:
            return None
        branch = s['properties']['error']['allOf'][1]
        return branch['properties']['code']['enum']

    # docs/api.md, Conventions: | status | `code` | when |
    table = re.findall(r'^\s*\| (\d{3}) \| `(\w+)` \|', API_MD.read_text(),
                       flags=re.M)
    assert len(table) >= 15
    for status, code in table:
        assert code in codes, (status, code)
        if status != '426':             # a WebSocket handshake's only
            assert code in narrowed(status), (status, code)

    # what the module writes for each status (src/ngx_chat_http.c)
    written = re.findall(r'case (\d{3}): return "(\w+)";', HTTP_C.read_text())
    assert len(written) >= 13
    for status, code in written:
        assert code in codes, (status, code)
    default = re.search(r'default:\s*return "(\w+)";', HTTP_C.read_text())
    assert default.group(1) in codes

    reasons = re.findall(r'#define NGX_CHAT_TOKEN_\w+\s+"(\w+)"',
                         (ROOT / 'src' / 'ngx_chat_pure.h').read_text())
    assert sorted(reasons) == sorted(schemas['TokenReason']['enum'])


def test_the_validator_refuses_what_does_not_fit(doc):
    message = {'$ref': '#/components/schemas/Message'}
    good = {'id': 1, 'conversation_id': 2, 'seq': 3, 'sender_id': 'alice',
            'type': 'text', 'content': 'hi', 'attachments': [],
            'reply_to': None, 'reply_count': 0, 'forwarded_from': None,
            'mentions': [], 'reactions': [{'emoji': 'x', 'count': 1,
                                           'me': True}],
            'is_edited': False, 'edited_at': None, 'is_deleted': False,
            'is_pinned': False, 'client_id': None,
            'created_at': '2026-11-22T12:45:20.504Z', 'poll': None,
            'bot': False}
    assert validate(doc, message, good) == []
    for change, fault in [
            ({'type': 'fax'}, "'fax' is not one of"),
            ({'id': '1'}, "'1' is not of type integer"),
            ({'is_pinned': 0}, 'is not of type boolean'),
            ({'seq': None}, '$.seq: null'),
            ({'extra': 1}, 'has extra'),
            ({'created_at': 'yesterday'}, 'is not a date-time'),
            ({'reactions': [{'emoji': 'x', 'count': 1}]}, 'lacks me'),
            ({'poll': {'options': []}}, 'lacks multiple')]:
        errors = validate(doc, message, dict(good, **change))
        assert any(fault in e for e in errors), (change, errors)
    errors = validate(doc, message, {k: v for k, v in good.items()
                                     if k != 'content'})
    assert errors == ['$: lacks content']
    assert validate(doc, {'$ref': '#/components/schemas/Error404'},
                    {'error': {'code': 'gone', 'message': 'x'}})


# live answers

class Api:
    """Requests of one user whose answers are checked against the
    document: the status must be one the route documents, the JSON body
    must fit its schema, and a body sent must fit the request schema."""

    def __init__(self, doc, client):
        self.doc = doc
        self.client = client
        self.checked = []

    def __call__(self, method, template, expect, body=None, query='',
                 **params):
        op = self.doc['paths'][template][method.lower()]
        where = f'{method} {template}'
        path = template.format(**params).lstrip('/') + \
            (f'?{query}' if query else '')

        json_body = resolve(self.doc, op.get('requestBody', {})) \
            .get('content', {}).get('application/json')
        if body is not None and json_body is not None:
            errors = validate(self.doc, json_body['schema'], body, 'body')
            # what the document refuses, the server refuses, and the other
            # way round
            assert bool(errors) == (expect == 400), (where, body, errors)

        r = self.client.request(method, path, body)
        assert r.status == expect, (where, r)
        answers = op['responses']
        assert str(r.status) in answers, \
            f'{where} answered {r.status}, which the document does not list'
        answer = resolve(self.doc, answers[str(r.status)])
        content = answer.get('content', {})
        if 'application/json' in content:
            assert r.headers.get('Content-Type', '').startswith(
                'application/json'), (where, r)
            errors = validate(self.doc, content['application/json']['schema'],
                              r.json)
            assert not errors, f'{where} {r.status}: ' + '; '.join(errors)
        elif not content:
            assert r.body == '', (where, r)
        self.checked.append((method, template, r.status))
        return r.json if r.body else None


def test_live_answers_fit_the_document(tenant, doc):
    alice = Api(doc, tenant.client('alice', name='Alice'))
    bob = Api(doc, tenant.client('bob'))
    anon = Api(doc, tenant.anonymous())
    carol = f'carol-{uuid.uuid4().hex[:6]}'

    anon('GET', '/health', 200)

    c = alice('POST', '/conversations', 201,
              {'type': 'group', 'title': 'launch', 'member_ids': ['bob']})
    cid = c['id']
    d = alice('POST', '/conversations/direct', 201, {'user_id': 'bob'})
    assert alice('POST', '/conversations/direct', 200,
                 {'user_id': 'bob'})['id'] == d['id']

    conv = {'conversation_id': cid}
    m = alice('POST', '/conversations/{conversation_id}/messages', 201,
              {'content': 'hello world', 'mentions': ['bob'],
               'client_id': 'c-1'}, **conv)
    msg = dict(conv, message_id=m['id'])
    alice('POST', '/conversations/{conversation_id}/messages', 200,
          {'content': 'again', 'client_id': 'c-1'}, **conv)
    alice('POST', '/conversations/{conversation_id}/messages/{message_id}/'
          'reactions', 200, {'emoji': 'ok'}, **msg)
    poll = alice('POST', '/conversations/{conversation_id}/messages', 201,
                 {'type': 'poll', 'content': 'when?',
                  'poll_options': ['now', 'later']}, **conv)
    voted = bob('POST', '/conversations/{conversation_id}/messages/'
                '{message_id}/votes', 200, {'choices': [1]},
                conversation_id=cid, message_id=poll['id'])
    assert voted['poll']['options'][0]['voters'] == ['bob']

    page = alice('GET', '/conversations', 200, query='limit=10')
    assert page['items'][0]['last_message'] is not None
    alice('GET', '/conversations/{conversation_id}', 200, **conv)
    alice('GET', '/conversations/{conversation_id}/messages', 200,
          query='limit=2', **conv)
    alice('GET', '/conversations/{conversation_id}/messages/{message_id}',
          200, **msg)
    alice('GET', '/conversations/{conversation_id}/members', 200, **conv)
    alice('POST', '/conversations/{conversation_id}/members', 200,
          {'user_ids': [carol], 'role': 'moderator'}, **conv)
    bob('POST', '/conversations/{conversation_id}/read', 200, {}, **conv)
    assert bob('GET', '/unread', 200)['total'] == 0
    alice('GET', '/conversations/{conversation_id}/messages/{message_id}/'
          'receipts', 200, **msg)
    alice('GET', '/search', 200, query='q=hello')
    alice('PUT', '/presence/me', 200, {'status': 'busy',
                                      'custom_status': 'launching'})
    alice('GET', '/presence', 200, query='user_ids=alice,bob')
    alice('POST', '/conversations/{conversation_id}/typing', 204,
          {'is_typing': True}, **conv)
    alice('GET', '/conversations/{conversation_id}/files', 200, **conv)

    # refusals, each in the error object of its status
    alice('GET', '/conversations/{conversation_id}', 404,
          conversation_id=MAX_ID)
    alice('GET', '/conversations/{conversation_id}', 400,
          conversation_id='abc')
    alice('POST', '/conversations', 400, {'type': 'bogus'})
    alice('POST', '/conversations', 400, {'type': 'group', 'topic': 'x'})
    alice('POST', '/conversations/{conversation_id}/members', 400,
          {'user_ids': [str(i) for i in range(501)]}, **conv)
    anon('GET', '/conversations', 401)
    bob('PATCH', '/conversations/{conversation_id}/members/{user_id}', 403,
        {'role': 'admin'}, conversation_id=cid, user_id='bob')
    alice('DELETE', '/conversations/{conversation_id}/members/{user_id}',
          409, conversation_id=cid, user_id='alice')
    alice('DELETE', '/conversations/{conversation_id}/messages/{message_id}',
          204, **msg)
    alice('POST', '/conversations/{conversation_id}/messages/{message_id}/'
          'reactions', 410, {'emoji': 'ok'}, **msg)
    r = alice.client.post(f'conversations/{cid}/messages', raw='hi',
                          headers={'Content-Type': 'text/plain'})
    assert r.status == 415, r
    assert not validate(doc, {'$ref': '#/components/schemas/Error415'},
                        r.json)

    # what no route documents: the generic error object
    body = {'$ref': '#/components/schemas/ErrorBody'}
    r = alice.client.get('no/such/route')
    assert r.status == 404 and not validate(doc, body, r.json), r
    r = alice.client.put('conversations', {})
    assert r.status == 405 and r.headers['Allow'] == 'GET, POST', r
    assert not validate(doc, body, r.json), r
    assert not validate(doc, {'$ref': '#/components/schemas/Error405'},
                        r.json), r

    assert len(alice.checked) + len(bob.checked) + len(anon.checked) >= 30


def test_live_uploads_fit_the_document(tenant, doc):
    alice = tenant.client('alice')
    r = alice.post('files?name=notes.txt', raw=b'some notes\n',
                   headers={'Content-Type': 'text/plain'})
    if r.status == 404:
        pytest.skip('this nginx has no chat_files')
    assert r.status == 201, r
    op = doc['paths']['/files']['post']
    schema = resolve(doc, op['responses']['201'])['content'][
        'application/json']['schema']
    assert not validate(doc, schema, r.json), validate(doc, schema, r.json)

    c = alice.create(members=['bob'])
    api = Api(doc, alice)
    m = api('POST', '/conversations/{conversation_id}/messages', 201,
            {'type': 'file', 'attachments': [r.json['id']]},
            conversation_id=c['id'])
    assert m['content'] is None and m['attachments'][0]['id'] == r.json['id']
    files = api('GET', '/conversations/{conversation_id}/files', 200,
                conversation_id=c['id'])
    assert files['items'][0]['file']['id'] == r.json['id']
    got = alice.get(f'files/{r.json["id"]}')
    assert got.status == 200 and got.data == b'some notes\n', got
    assert '200' in doc['paths']['/files/{file_id}']['get']['responses']
