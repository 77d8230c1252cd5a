"""The build compiles the translation catalogs (webapp/translations/*/LC_MESSAGES/*.po →
.mo), so any install (`pip install .`, a wheel, `pip install -e .`) serves the Chinese
interface without `make`. Everything else is in pyproject.toml."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

TRANSLATIONS = Path("webapp") / "translations"


class BuildWithCatalogs(build_py):
    def run(self) -> None:
        super().run()
        # An editable install runs from the source tree: the catalogs are compiled there.
        target = Path(".") if self.editable_mode else Path(self.build_lib)
        for source in sorted(TRANSLATIONS.glob("*/LC_MESSAGES/*.po")):
            compile_catalog(source, target / source.with_suffix(".mo"))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        compiled = [
            str(Path(self.build_lib) / source.with_suffix(".mo"))
            for source in TRANSLATIONS.glob("*/LC_MESSAGES/*.po")
        ]
        return [*super().get_outputs(include_bytecode), *compiled]


def compile_catalog(source: Path, target: Path) -> None:
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with source.open("rb") as po:
        catalog = read_po(po)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("wb") as mo:
        write_mo(mo, catalog)


setup(cmdclass={"build_py": BuildWithCatalogs})
