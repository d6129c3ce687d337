"""SQL is built only from bound parameters: no SQL text in libs/ or
services/ (their tests aside) is assembled with %, .format, f-strings, + or
join inside sa.text() or an execute() call, directly or through a local
name. What is provably constant, or an identifier PostgreSQL cannot take as
a parameter, is on the allow-list below with the reason."""
import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = ("libs", "services")
SQL_TEXT = {"text"}                                        # sa.text(...), text(...)
SQL_EXECUTE = {"execute", "exec_driver_sql", "executemany"}  # conn./session./op./cursor.

# (file, a piece of the call's source): why it is safe.
ALLOWED = {
    ("libs/crm_common/migrations.py", "CREATE DATABASE"):
        "a database name cannot be a bound parameter; it comes from CRM_DB_PREFIX and the "
        "service's name, and is quoted (double quotes doubled)",
    ("libs/crm_common/testing.py", "DROP DATABASE"):
        "test helper: the names are read from pg_database (LIKE a bound prefix)",
    ("libs/crm_common/testing.py", "LOCK TABLE"):
        "test helper: the table name is a literal in the test that holds the lock",
    ("services/leads/alembic/versions/0001_leads_and_activities.py", "gin_trgm_ops"):
        "DDL: the column names come from a literal tuple in the migration",
    ("services/contacts/alembic/versions/0002_contacts_and_history.py", "gin_trgm_ops"):
        "DDL: the column names come from a literal tuple in the migration",
}


def source_files():
    for top in SOURCES:
        for folder, dirs, files in os.walk(os.path.join(ROOT, top)):
            dirs[:] = [d for d in dirs if d not in ("tests", "__pycache__")]
            for name in files:
                if name.endswith(".py"):
                    path = os.path.join(folder, name)
                    yield os.path.relpath(path, ROOT), path


def called_name(call):
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)


def assignments(tree):
    """{scope node: {name: [assigned values]}} for every function and the module."""
    found = {}
    for scope in [tree] + [n for n in ast.walk(tree)
                           if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]:
        names = found.setdefault(scope, {})
        for node in ast.walk(scope):
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        names.setdefault(target.id, []).append(node.value)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and node.value is not None \
                    and isinstance(node.target, ast.Name):
                names.setdefault(node.target.id, []).append(node.value)
    return found


def assembled(expr, names, seen=()):
    """Whether `expr` builds text from something at run time."""
    if isinstance(expr, ast.JoinedStr):
        return any(isinstance(v, ast.FormattedValue) for v in expr.values)
    if isinstance(expr, ast.BinOp):
        if isinstance(expr.op, ast.Mod):
            return True
        if isinstance(expr.op, ast.Add):
            constant = all(isinstance(side, ast.Constant) for side in (expr.left, expr.right))
            return not constant or assembled(expr.left, names) or assembled(expr.right, names)
    if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
        return expr.func.attr in ("format", "join", "replace")
    if isinstance(expr, ast.Name) and expr.id not in seen:
        return any(assembled(v, names, seen + (expr.id,)) for v in names.get(expr.id, ()))
    return False


def sql_calls(tree):
    """(call, the names visible where it is) of every SQL call of a module."""
    scopes = assignments(tree)
    functions = [n for n in scopes if n is not tree]
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and called_name(node) in SQL_TEXT | SQL_EXECUTE \
                and node.args:
            enclosing = [f for f in functions if any(n is node for n in ast.walk(f))]
            names = dict(scopes[tree])
            for function in enclosing:          # outermost first: ast.walk is breadth-first
                names.update(scopes[function])
            yield node, names


def findings():
    """(file, source of the call) of every SQL call whose text is assembled."""
    for rel, path in source_files():
        with open(path, encoding="utf-8") as f:
            source = f.read()
        for call, names in sql_calls(ast.parse(source, path)):
            if assembled(call.args[0], names):
                yield rel, ast.get_source_segment(source, call)


def allowed_by(rel, code):
    return [key for key in ALLOWED if key[0] == rel and key[1] in code]


def test_sql_text_is_never_assembled_from_values():
    found = list(findings())
    refused = ["%s: %s" % (rel, code) for rel, code in found if not allowed_by(rel, code)]
    assert not refused, "SQL assembled at run time (bind parameters instead):\n" + "\n".join(
        refused)


def test_every_allow_list_entry_is_still_needed():
    used = {key for rel, code in findings() for key in allowed_by(rel, code)}
    assert set(ALLOWED) - used == set()


def check(snippet):
    return any(assembled(call.args[0], names) for call, names in sql_calls(ast.parse(snippet)))


def test_the_check_sees_each_way_of_assembling_sql():
    for snippet in ('conn.execute(sa.text("SELECT * FROM t WHERE a = %s" % a))',
                    'conn.execute(sa.text(f"SELECT * FROM t WHERE a = {a}"))',
                    'conn.execute(sa.text("SELECT * FROM t WHERE a = {}".format(a)))',
                    'conn.execute(sa.text("SELECT * FROM t WHERE a = \'" + a + "\'"))',
                    'cursor.execute("SELECT * FROM t WHERE a = %s" % (a,))',
                    'def f(a):\n    sql = f"SELECT {a}"\n    return session.execute(text(sql))'):
        assert check(snippet), snippet
    for snippet in ('conn.execute(sa.text("SELECT * FROM t WHERE a = :a"), {"a": a})',
                    'cursor.execute("SELECT * FROM t WHERE a = %s", (a,))',
                    'conn.execute(sa.select(t).where(t.c.a == a))',
                    'SQL = "SELECT 1"\ndef f():\n    return conn.execute(sa.text(SQL))'):
        assert not check(snippet), snippet
