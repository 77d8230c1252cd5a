"""Units sort in natural order: 第一 … 第五 … 第十一, 2 before 10."""

from hypothesis import given
from hypothesis import strategies as st

from webapp.people.models import UnitKind
from webapp.people.units import create_unit, unit_tree
from webapp.text import chinese_number, natural_key

CHINESE = ["零", "一", "二", "三", "四", "五", "六", "七", "八", "九"]


def spelled(n: int) -> str:
    """n (0–999) in Chinese numerals as people write them (十二, 二十, 一百零五)."""
    if n < 10:
        return CHINESE[n]
    hundreds, rest = divmod(n, 100)
    tens, ones = divmod(rest, 10)
    text = CHINESE[hundreds] + "百" if hundreds else ""
    if tens:
        text += ("" if tens == 1 and not hundreds else CHINESE[tens]) + "十"
    elif hundreds and ones:
        text += "零"
    return text + (CHINESE[ones] if ones else "")


@given(st.integers(0, 999))
def test_chinese_numerals_read_as_their_value(n):
    assert chinese_number(spelled(n)) == n


@given(st.lists(st.integers(1, 999), min_size=2, max_size=8, unique=True))
def test_branches_sort_by_their_number_however_it_is_written(numbers):
    chinese = sorted((f"第{spelled(n)}党支部" for n in numbers), key=natural_key)
    assert chinese == [f"第{spelled(n)}党支部" for n in sorted(numbers)]
    arabic = sorted((f"{n}号楼" for n in numbers), key=natural_key)
    assert arabic == [f"{n}号楼" for n in sorted(numbers)]


def test_the_unit_tree_lists_siblings_in_natural_order(app):
    township = create_unit("卢沟桥乡", UnitKind.TOWNSHIP)
    for name in ("第一临时党支部", "第三临时党支部", "第二临时党支部", "第五临时党支部",
                 "第四临时党支部", "第十临时党支部"):  # fmt: skip
        create_unit(name, UnitKind.BRANCH, township)
    names = [unit.name for unit, depth in unit_tree() if depth == 1]
    assert names == ["第一临时党支部", "第二临时党支部", "第三临时党支部", "第四临时党支部",
                     "第五临时党支部", "第十临时党支部"]  # fmt: skip
