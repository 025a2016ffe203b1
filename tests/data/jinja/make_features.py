#!/usr/bin/env python3
"""Writes features.json: small templates exercising each construct of our Jinja interpreter, rendered by Python's
jinja2 with the settings of Hugging Face's apply_chat_template (trim_blocks, lstrip_blocks, loopcontrols, its
tojson and raise_exception). A case jinja2 refuses records "error": true. Run: python3 make_features.py"""
import json
import pathlib

import jinja2
import jinja2.ext
from jinja2.sandbox import ImmutableSandboxedEnvironment


def raise_exception(message):
    raise jinja2.exceptions.TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
env.filters["tojson"] = tojson
env.globals["raise_exception"] = raise_exception

MSGS = [{"role": "system", "content": "  Be brief. "}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello", "tool_calls": [{"function": {"name": "f", "arguments": {"b": 1, "a": [1, 2.5, None, True]}}}]}]
DATA = {"messages": MSGS, "d": {"b": 2, "A": 1, "c": {"x": [1, {"y": "z"}]}}, "l": [3, 1, 2], "s": "Hello, World",
        "e": [], "n": None, "t": True, "f": 1.5, "i": -7, "u": "h\u00e9llo \u2603\u00a0"}

CASES = [
    # literals and printing (Python's str of each type)
    ("print_types", "{{ 1 }}|{{ 1.0 }}|{{ 1.5e20 }}|{{ 1e-5 }}|{{ 0.1 }}|{{ true }}|{{ none }}|{{ 'a' }}|{{ [1, 'b', none] }}|{{ {'k': 'v', 'n': 1} }}"),
    ("print_data", "{{ d }}|{{ l }}|{{ n }}|{{ t }}|{{ f }}|{{ i }}|{{ u }}|{{ undefined_thing }}|{{ e }}"),
    ("string_repr_quotes", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'tab\\tnew\\nline\\\\'] }}"),
    ("float_repr", "{{ [123456789012345.0, 1234567890123456.0, 12345678901234567.0, 0.0001, 0.00001, 2.5e-7, -0.0, 3.14159] }}"),
    ("string_escapes", "{{ 'a\\nb\\tc\\x41\\u00e9\\U0001F600\\'\\\"\\\\\\q' }}"),
    ("adjacent_strings", "{{ 'a' 'b' \"c\" }}"),
    # operators
    ("arithmetic", "{{ 1 + 2 }} {{ 7 - 10 }} {{ 3 * 4 }} {{ 7 / 2 }} {{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 2 ** 10 }} {{ 1 + 2.5 }} {{ true + 1 }} {{ 6 / 3 }}"),
    ("float_ops", "{{ 7.5 // 2 }} {{ -7.5 % 2 }} {{ 2 ** -1 }} {{ 2.0 ** 3 }}"),
    ("precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ -2 ** 2 }} {{ 2 ** 3 ** 2 }} {{ (1 + 2) ~ 3 }} {{ 'a' ~ (1 + 2) }} {{ 2 * 3 ~ 4 }} {{ not 1 == 2 }} {{ 10 - 2 - 3 }}"),
    ("string_ops", "{{ 'ab' + 'cd' }} {{ 'ab' * 3 }} {{ 2 * 'x' }} {{ 'a' ~ 1 ~ none ~ true ~ undefined_thing }} {{ [1] + [2, 3] }} {{ [0] * 3 }}"),
    ("comparisons", "{{ 1 < 2 }} {{ 2 <= 1 }} {{ 'a' < 'b' }} {{ 'B' < 'a' }} {{ [1, 2] < [1, 3] }} {{ 1 == 1.0 }} {{ 1 != 1 }} {{ none == none }} {{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ true == 1 }} {{ 'a' == 'a' }} {{ [1, [2]] == [1, [2]] }} {{ {'a': 1, 'b': 2} == {'b': 2, 'a': 1} }}"),
    ("in_operator", "{{ 'ell' in s }} {{ 'x' in s }} {{ 2 in l }} {{ 5 not in l }} {{ 'b' in d }} {{ 'z' in d }} {{ 1.0 in l }} {{ undefined_thing in l }}"),
    ("logic", "{{ 0 or 'x' }} {{ 1 and 'y' }} {{ '' and 1 }} {{ none or [] }} {{ not [] }} {{ not 'a' }} {{ e or 'empty' }} {{ n and n.x }}"),
    ("inline_if", "{{ 'yes' if t else 'no' }} {{ 'yes' if n else 'no' }} [{{ 'only' if n }}] {{ 1 if 0 else 2 if 0 else 3 }}"),
    ("unary", "{{ -i }} {{ +f }} {{ -(1 + 2) }} {{ - 2.5 }} {{ not not t }}"),
    # subscripts, attributes, slices
    ("subscripts", "{{ l[0] }} {{ l[-1] }} {{ d['b'] }} {{ d.b }} {{ d['c']['x'][1]['y'] }} {{ d.c.x[1].y }} {{ s[0] }} {{ s[-1] }} [{{ l[10] }}] [{{ d['nope'] }}] {{ l.1 }} [{{ s.nope }}]"),
    ("slices", "{{ l[1:] }} {{ l[:-1] }} {{ l[::-1] }} {{ l[::2] }} {{ s[7:] }} {{ s[:5] }} {{ s[::-1] }} {{ l[5:] }} {{ l[-100:100] }} {{ u[1:4] }} {{ l[2:0:-1] }} {{ messages[1:] | length }}"),
    ("dict_method_vs_key", "{{ {'items': 1}['items'] }} {{ {'get': 2}.get('get') }} {{ d.get('b') }} {{ d.get('zz') }} {{ d.get('zz', 'dflt') }}"),
    # statements
    ("if_elif_else", "{% for x in [0, 1, 2, 3] %}{% if x == 0 %}zero{% elif x == 1 %}one{% elif x == 2 %}two{% else %}many{% endif %},{% endfor %}"),
    ("for_loop_vars", "{% for x in ['a', 'b', 'c'] %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}:{{ loop.previtem }}<{{ loop.nextitem }}>{{ loop.cycle('x', 'y') }} {% endfor %}"),
    ("for_else", "{% for x in e %}{{ x }}{% else %}nothing{% endfor %}|{% for x in l %}{{ x }}{% else %}nothing{% endfor %}"),
    ("for_filter", "{% for x in [1, 2, 3, 4, 5, 6] if x % 2 == 0 %}{{ x }}{{ loop.index }}/{{ loop.length }} {% endfor %}"),
    ("for_dict_and_unpack", "{% for k in d %}{{ k }},{% endfor %}|{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}|{% for a, b in [[1, 2], [3, 4]] %}{{ a + b }}{% endfor %}"),
    ("for_string", "{% for c in u %}[{{ c }}]{% endfor %}"),
    ("for_undefined", "{% for x in undefined_thing %}{{ x }}{% else %}none{% endfor %}"),
    ("break_continue", "{% for x in range(10) %}{% if x == 2 %}{% continue %}{% endif %}{% if x == 5 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
    ("nested_loops", "{% for a in range(3) %}{% for b in range(a) %}{{ loop.index }}{{ b }}.{% endfor %}({{ loop.index }}){% endfor %}"),
    ("set_scoping", "{% set x = 1 %}{% for i in range(3) %}{% set x = x + i %}{{ x }}{% endfor %}|{{ x }}{% if true %}{% set x = 9 %}{% endif %}|{{ x }}"),
    ("set_per_iteration", "{% for i in range(3) %}{% if i == 0 %}{% set y = 5 %}{% endif %}[{{ y }}]{% endfor %}|{% set y = 1 %}{% for i in range(3) %}{% if i == 0 %}{% set y = 5 %}{% endif %}[{{ y }}]{% endfor %}"),
    ("namespace", "{% set ns = namespace(total=0, names=[]) %}{% for m in messages %}{% set ns.total = ns.total + 1 %}{% set ns.names = ns.names + [m.role] %}{% endfor %}{{ ns.total }} {{ ns.names }} {{ ns.nope is defined }}"),
    ("set_tuple_and_block", "{% set a, b = [1, 2] %}{{ a }}{{ b }}{% set blk %}x{{ a }}y{% endset %}[{{ blk }}]{% set t = 1, 2 %}{{ t }}"),
    ("range_forms", "{{ range(3) | list }} {{ range(1, 4) | list }} {{ range(10, 0, -3) | list }} {{ range(0) | list }} {{ range(5, 1) | list }}"),
    ("macro_defaults", "{% macro greet(name, greeting='Hello', punct='!') %}{{ greeting }}, {{ name }}{{ punct }}{% endmacro %}{{ greet('A') }} {{ greet('B', 'Hi') }} {{ greet('C', punct='?') }} {{ greet(name='D', greeting='Yo') }}"),
    ("macro_recursion", "{% macro fact(n) %}{% if n <= 1 %}1{% else %}{{ n * (fact(n - 1) | int) }}{% endif %}{% endmacro %}{{ fact(10) }}"),
    ("macro_missing_arg", "{% macro m(a, b) %}[{{ a }}][{{ b }}][{{ b is defined }}]{% endmacro %}{{ m(1) }}"),
    ("macro_sees_globals", "{% set g = 'G' %}{% macro m() %}{{ g }}{{ s }}{% set g = 'local' %}{{ g }}{% endmacro %}{{ m() }}{{ g }}"),
    ("macro_whitespace", "{% macro m(x) -%}\n  [ {{ x }} ]\n{%- endmacro %}\n<{{ m(1) }}>\n"),
    # whitespace control, trim_blocks, lstrip_blocks
    ("trim_lstrip", "<ul>\n    {% for x in l %}\n    <li>{{ x }}</li>\n    {% endfor %}\n</ul>\n"),
    ("dash_control", "a   {{- ' b ' -}}   c\n  {%- if true -%}\n  d  {%- endif %}  e {# note #}\n   {#- c2 -#}  f"),
    ("plus_lstrip_off", "x\n    {%+ if true %}y{% endif %}\n    {% if true +%}\nz{% endif %}"),
    ("comment_trim", "a\n  {# comment #}\nb{# c -#}   \n\nc"),
    ("trailing_newline", "line\n\n"),
    ("crlf_newlines", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\nc"),
    ("expression_newlines", "{{\n  1 +\n  2\n}}{%\n  if true\n%}ok{% endif %}"),
    ("variable_keeps_newline", "{{ 'a' }}\nb\n{{ 'c' }}\n"),
    # filters
    ("filter_trim_case", "[{{ '  a b  ' | trim }}][{{ u | trim }}][{{ 'xxaxx' | trim('x') }}][{{ 'abC' | upper }}][{{ 'AbC' | lower }}][{{ n | trim }}][{{ undefined_thing | upper }}]"),
    ("filter_default", "{{ undefined_thing | default('d') }} {{ n | default('d') }} {{ '' | default('d') }} {{ '' | default('d', true) }} {{ 0 | d('z', boolean=true) }} {{ s | default('d') }}"),
    ("filter_length", "{{ l | length }} {{ s | length }} {{ u | length }} {{ d | count }} {{ e | length }} {{ undefined_thing | length }}"),
    ("filter_dictsort", "{{ d | dictsort }} {{ {'b': 1, 'a': 2, 'C': 0} | dictsort }} {{ {'b': 1, 'a': 2, 'C': 0} | dictsort(true) }} {{ {'b': 1, 'a': 2, 'c': 0} | dictsort(by='value') }} {{ {'b': 1, 'a': 2} | dictsort(reverse=true) }}"),
    ("filter_map_list_join", "{{ messages | map(attribute='role') | join(', ') }} {{ ['a', 'b'] | map('upper') | list }} {{ s | list }} {{ d | list }} {{ l | join }} {{ l | join('-') }} {{ messages | join('/', attribute='role') }} {{ [{'x': 1}, {}] | map(attribute='x', default=0) | list }}"),
    ("filter_tojson", "{{ d | tojson }} {{ messages[2] | tojson }} {{ u | tojson }} {{ [1.0, 1e100, 'q\"\\\\\\n\\t\\x01'] | tojson }} {{ l | tojson(indent=2) }} {{ {} | tojson }} {{ {'a': [], 'b': {}} | tojson(indent=1) }}"),
    ("filter_first_last", "{{ l | first }} {{ l | last }} {{ s | first }} {{ s | last }} [{{ e | first }}]"),
    ("filter_string_int", "{{ 5 | string }}{{ (5 | string) ~ 'x' }} {{ '42' | int + 1 }} {{ ' 7 ' | int }} {{ '3.9' | int }} {{ 'zz' | int }} {{ 'zz' | int(9) }} {{ 4.7 | int }} {{ true | int }} {{ none | string }}"),
    ("filter_replace", "{{ s | replace('l', 'L') }} {{ s | replace('l', 'L', 2) }} {{ 'abc' | replace('', '-') }} {{ s.replace('World', 'There') }}"),
    ("filter_items", "{% for k, v in d | items %}{{ k }}:{{ v }} {% endfor %}{{ undefined_thing | items | list }}"),
    ("filter_select_reject", "{{ messages | selectattr('role', 'equalto', 'user') | map(attribute='content') | list }} {{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='role') | list }} {{ messages | selectattr('tool_calls') | list | length }} {{ messages | selectattr('tool_calls', 'defined') | list | length }} {{ [1, none, 'a', 0] | select | list }} {{ [1, none, 'a'] | reject('none') | list }} {{ [1, 'a'] | select('string') | list }}"),
    ("filter_reverse_safe", "{{ l | reverse | list }} {{ 'abc' | reverse }} {{ 'x<y' | safe }}"),
    ("filter_chain_postfix", "{{ (s | lower).split(',')[1] | trim | upper }} {{ messages | map(attribute='role') | list | first }}"),
    # tests
    ("tests", "{% for v in [none, true, 1, 1.5, 'a', [1], {'a': 1}] %}{{ v is none }}{{ v is boolean }}{{ v is number }}{{ v is integer }}{{ v is float }}{{ v is string }}{{ v is mapping }}{{ v is sequence }}{{ v is iterable }}{{ v is defined }};{% endfor %}{{ undefined_thing is defined }}{{ undefined_thing is undefined }}{{ undefined_thing is iterable }}"),
    ("test_args", "{{ 1 is equalto 1 }} {{ 1 is equalto(2) }} {{ 'a' is not equalto 'a' }} {{ 2 is in [1, 2] }} {{ 1 is eq 1.0 }} {{ 1 is ne 2 }} {{ true is true }} {{ 1 is true }} {{ false is false }} {{ n is sameas none }}"),
    ("test_then_if", "{{ 'a' if s is string else 'b' }} {{ 'a' if s is not string else 'b' }} {{ 'x' if l is sequence and l is not string }}"),
    # methods
    ("str_methods", "{{ s.split(', ') }} {{ ' a  b c '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ ' a b '.split(none, 1) }} [{{ '  pad  '.strip() }}][{{ 'xpadx'.strip('x') }}][{{ '  l'.lstrip() }}][{{ 'r  '.rstrip() }}] {{ s.startswith('Hell') }} {{ s.endswith('x') }} {{ s.startswith(('x', 'H')) }} {{ s.upper() }} {{ s.lower() }}"),
    ("dict_methods", "{{ d.keys() | list }} {{ d.values() | list | length }} {% for k, v in d.items() %}{{ k }}{% endfor %} {{ d.items() | list | length }}"),
    ("split_unicode_space", "{{ u.split() }} {{ ('a' ~ '\u3000' ~ 'b').split() }} [{{ '\u00a0x\u2003' | trim }}]"),
    # raise_exception and errors jinja2 refuses too
    ("raise_exception", "{{ raise_exception('bad request') }}"),
    ("error_undefined_attribute", "{{ undefined_thing.attr }}"),
    ("error_undefined_arithmetic", "{{ undefined_thing + 1 }}"),
    ("error_type_add", "{{ 'a' + 1 }}"),
    ("error_compare", "{{ 'a' < 1 }}"),
    ("error_not_iterable", "{% for x in 5 %}{% endfor %}"),
    ("error_division", "{{ 1 // 0 }}"),
    ("error_unknown_filter", "{{ 1 | no_such_filter }}"),
    ("error_unclosed_if", "{% if true %}x"),
    ("error_unknown_tag", "{% frobnicate %}"),
    ("error_bad_expression", "{{ 1 + }}"),
    ("error_set_attr_on_dict", "{% set d.x = 1 %}"),
    ("error_macro_too_many_args", "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}"),
    ("error_concat_binds_tighter", "{{ 1 + 2 ~ 3 }}"),
    ("error_call_undefined", "{{ nothing_here() }}"),
]


def render(source):
    try:
        return {"rendered": env.from_string(source).render(**DATA)}
    except Exception as e:  # jinja2 refuses: our interpreter must refuse too
        return {"error": True, "message": f"{type(e).__name__}: {e}"}


out = {"source": "rendered by jinja2 " + jinja2.__version__ + " (make_features.py)", "variables": DATA,
       "cases": [{"name": n, "template": t, **render(t)} for n, t in CASES]}
path = pathlib.Path(__file__).with_name("features.json")
path.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n")
print(f"{len(CASES)} cases -> {path}")
