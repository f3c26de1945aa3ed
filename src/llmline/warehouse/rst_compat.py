"""Sphinx markup that plain docutils does not know, for parsing Sphinx-style reST.

FAQs written for Sphinx use roles (``:func:``, ``:setting:``, ``:pep:``) and
directives (``.. versionadded::``, ``.. code-block::``, ``.. index::``) that
docutils rejects as errors.  Pulling in Sphinx to parse a few text files
would be heavy, so this module registers small stand-ins that render the
markup roughly as Sphinx would show it, only while one document is parsed.

The interface is two functions:

* :func:`sphinx_markup` -- a context manager that registers the stand-ins
  ``text`` needs and removes them afterwards;
* :func:`define_sphinx_substitutions` -- defines ``|version|``, ``|release|``
  and ``|today|`` on a parsed document that did not define them itself.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from docutils import nodes, utils
from docutils.parsers import rst
from docutils.parsers.rst import directives, roles
from docutils.parsers.rst.languages import en as rst_en

__all__ = ["define_sphinx_substitutions", "sphinx_markup"]

# Roles Sphinx renders as ordinary text (cross-references to prose, labels);
# every other unknown role (``:func:``, ``:c:func:``, ``:setting:``...) names
# code and is rendered as an inline literal.
_TEXT_ROLES = frozenset(
    {"ref", "doc", "term", "abbr", "numref", "any", "download", "menuselection", "guilabel"}
    | {"dfn", "newsgroup", "mimetype", "manpage", "program", "command", "source"}
)
# Directives that only carry metadata for Sphinx (index entries, navigation,
# hidden doctest set-up): they have nothing to show.
_DROP_DIRECTIVES = frozenset(
    {"index", "toctree", "highlight", "highlightlang", "tabularcolumns", "literalinclude"}
    | {"sectionauthor", "moduleauthor", "codeauthor", "testsetup", "testcleanup", "program"}
    | {"module", "currentmodule", "py:module", "py:currentmodule", "default-domain"}
)
# Directives whose content is code or output, not reST.
_LITERAL_DIRECTIVES = frozenset(
    {"code-block", "sourcecode", "doctest", "testcode", "testoutput", "productionlist", "ipython"}
)
# Directives that wrap content shown under a condition Sphinx evaluates.
_CONTENT_ONLY_DIRECTIVES = frozenset({"only", "ifconfig"})
_VERSION_LABELS = {
    "versionadded": "New in version {}",
    "versionchanged": "Changed in version {}",
    "versionremoved": "Removed in version {}",
    "deprecated": "Deprecated since version {}",
    "deprecated-removed": "Deprecated since version {}",
}
# Sphinx gives these its own meaning (options, ``#anchor`` and explicit
# titles docutils rejects), so they are replaced even though docutils knows them.
_SPHINX_OVERRIDDEN_ROLES = frozenset({"pep", "rfc"})
_PEP_RFC = {
    "pep": ("PEP {}", "https://peps.python.org/pep-{:04d}/"),
    "rfc": ("RFC {}", "https://datatracker.ietf.org/doc/html/rfc{}.html"),
}
_SPHINX_OVERRIDDEN_DIRECTIVES = frozenset({"code-block", "sourcecode"})
# Substitutions Sphinx defines for every document.
_SPHINX_SUBSTITUTIONS = ("version", "release", "today")

_ROLE_RE = re.compile(
    r"(?:^|(?<=[^\w`])):((?:[A-Za-z][\w.+-]*:)?[A-Za-z][\w.+-]*):`|`:([A-Za-z][\w.+:-]*):"
)
_DIRECTIVE_RE = re.compile(
    r"^[ \t]*\.\.[ \t]+(?:\|[^|\n]+\|[ \t]+)?([A-Za-z][\w.+:-]*?)::(?=\s|$)", re.M
)
_EXPLICIT_TITLE_RE = re.compile(r"^(.+?)\s*<([^<>]*)>$", re.S)


def _xref_text(text: str) -> tuple[str, str]:
    """Display text and target of a Sphinx cross-reference, as Sphinx shows it."""
    text = utils.unescape(text)
    match = _EXPLICIT_TITLE_RE.match(text)
    if match:
        return match.group(1), match.group(2)
    target = text.lstrip("!")
    if target.startswith("~"):  # ``~pkg.mod.func`` displays as ``func``
        target = target[1:]
        return target.rsplit(".", 1)[-1], target
    return target, target


def _sphinx_role(
    name: str, rawtext: str, text: str, lineno: int, inliner: Any, **_options: object
) -> tuple[list[nodes.Node], list[nodes.system_message]]:
    """Render any Sphinx role: as text, as an inline literal or as a PEP/RFC link."""
    shown, target = _xref_text(text)
    short = name.lower().rsplit(":", 1)[-1]
    if short in _SPHINX_OVERRIDDEN_ROLES:
        number, _, anchor = target.partition("#")
        if not number.strip().isdigit():
            msg = inliner.reporter.error(f"{short.upper()} number must be a number", line=lineno)
            return [inliner.problematic(rawtext, rawtext, msg)], [msg]
        label, uri = _PEP_RFC[short]
        uri = uri.format(int(number)) + (f"#{anchor}" if anchor else "")
        shown = shown if shown != target else label.format(int(number))
        return [nodes.reference(rawtext, shown, refuri=uri)], []
    if short == "menuselection":
        shown = shown.replace("-->", "\N{TRIANGULAR BULLET}")
    node_cls = nodes.inline if short in _TEXT_ROLES else nodes.literal
    return [node_cls(rawtext, shown, classes=["xref", short])], []


class _AnyOptions(dict[str, Callable[[str | None], Any]]):
    """An option spec that accepts every option, so Sphinx options do not fail.

    It is never empty: docutils only parses options when the spec is truthy.
    """

    def __init__(self) -> None:
        super().__init__(name=_unchanged, **{"class": directives.class_option})

    def __missing__(self, key: str) -> Callable[[str | None], Any]:
        return _unchanged


def _unchanged(argument: str | None) -> str:
    return argument or ""


class _SphinxDirective(rst.Directive):  # type: ignore[misc]
    """Stands in for any Sphinx directive, shaped by the name it was used under."""

    required_arguments = 0
    optional_arguments = 1
    final_argument_whitespace = True
    option_spec = _AnyOptions()
    has_content = True

    def run(self) -> list[nodes.Node]:
        name = self.name.lower()
        argument = self.arguments[0] if self.arguments else ""
        if name in _DROP_DIRECTIVES:
            return []
        if name in _LITERAL_DIRECTIVES:
            code = "\n".join(self.content)
            is_code = name in _SPHINX_OVERRIDDEN_DIRECTIVES  # others take a group name
            language = argument.split()[0] if argument and is_code else ""
            return [nodes.literal_block(code, code, classes=["code", language] if language else [])]
        if name in _CONTENT_ONLY_DIRECTIVES:
            # Parsed straight into the enclosing node, as if the condition held,
            # so what docutils allows only at section level (``contents``) works.
            self.state.nested_parse(self.content, self.content_offset, self.state_machine.node)
            return []
        container = nodes.container(classes=[name.replace(":", "-")])
        self.add_name(container)
        if name in _VERSION_LABELS or name == "seealso":
            container += self._labelled_paragraph(name, argument)
        elif argument:
            # Object descriptions (``.. function:: f(x)``, ``.. setting:: DEBUG``):
            # the argument is a signature.
            container += nodes.paragraph("", "", nodes.literal(argument, argument))
        self.state.nested_parse(self.content, self.content_offset, container)
        return [container]

    def _labelled_paragraph(self, name: str, argument: str) -> nodes.paragraph:
        if name == "seealso":
            label, text = "See also", argument
        else:
            version, _, text = argument.partition(" ")
            if name == "deprecated-removed":
                removed, _, text = text.partition(" ")
                version = f"{version}, will be removed in version {removed}"
            label = _VERSION_LABELS[name].format(version)
        para = nodes.paragraph("", "", nodes.emphasis("", label + (": " if text else ".")))
        if text:
            inline, messages = self.state.inline_text(text.strip(), self.lineno)
            para.extend(inline)
            para.extend(messages)
        return para


_REGISTRY_LOCK = threading.Lock()
_MISSING = object()


def _unknown_names(text: str, settings: Any) -> tuple[set[str], set[str]]:
    """Roles and directives ``text`` uses that docutils itself does not know."""
    used_roles = {(a or b).lower() for a, b in _ROLE_RE.findall(text)}
    used_directives = {m.lower() for m in _DIRECTIVE_RE.findall(text)}
    probe = utils.new_document("<probe>", settings)
    unknown_roles = {
        r
        for r in used_roles
        if r in _SPHINX_OVERRIDDEN_ROLES or roles.role(r, rst_en, 0, probe.reporter)[0] is None
    }
    unknown_directives = {
        d
        for d in used_directives
        if d in _SPHINX_OVERRIDDEN_DIRECTIVES or directives.directive(d, rst_en, probe)[0] is None
    }
    return unknown_roles, unknown_directives


@contextmanager
def sphinx_markup(text: str, settings: Any) -> Iterator[None]:
    """Register stand-ins for the Sphinx markup in ``text`` while it is parsed.

    ``settings`` are the docutils settings of that parse; they are used to ask
    docutils which of the names in ``text`` it already knows (those keep their
    docutils meaning, except the few Sphinx redefines, such as ``:pep:``).

    docutils keeps roles and directives in module-level registries; the
    stand-ins are removed again afterwards (under a lock) so they never leak
    into other docutils users in the process.
    """
    with _REGISTRY_LOCK:
        unknown_roles, unknown_directives = _unknown_names(text, settings)
        # Private registries: docutils has no public way to unregister.
        role_registry: dict[str, Any] = roles._roles
        directive_registry: dict[str, Any] = directives._directives
        saved = [(role_registry, n, role_registry.get(n, _MISSING)) for n in unknown_roles]
        saved += [
            (directive_registry, n, directive_registry.get(n, _MISSING)) for n in unknown_directives
        ]
        for name in unknown_roles:
            roles.register_local_role(name, _sphinx_role)
        for name in unknown_directives:
            directives.register_directive(name, _SphinxDirective)
        try:
            yield
        finally:
            for registry, name, old in saved:
                if old is _MISSING:
                    registry.pop(name, None)
                else:
                    registry[name] = old


def define_sphinx_substitutions(document: nodes.document) -> None:
    """Define the substitutions Sphinx provides but ``document`` did not define.

    Sphinx fills them from its configuration, which a plain docutils parse
    has not got: the marker is kept as written instead of failing as an
    undefined substitution.  Call after parsing, before the transforms run.
    """
    for name in _SPHINX_SUBSTITUTIONS:
        if name not in document.substitution_defs:
            marker = f"|{name}|"
            document.substitution_defs[name] = nodes.substitution_definition(
                marker, nodes.Text(marker), names=[name]
            )
