"""What the demo loads: the Lugouqiao training course of 12 March, from shared/seed/.

Five professors lectured live over three afternoons, 16:00–18:00, to 60-odd cadres: the
township's deputy-level officials, the party secretaries of its 21 communities and
villages, and the secretaries of 5 temporary party branches. 刘金龙, 李文钊 and the first
day's two lectures are from the seed; the other names are plainly demo names.
"""

from webapp.people.models import Role, UnitKind

SERIES_TITLE = "卢沟桥乡基层党员干部能力提升研修班"
SERIES_DESCRIPTION = (
    "卢沟桥乡与中国人民大学教学科研基地联合举办的线上研修班。"
    "邀请中国人民大学农业与农村发展学院、公共管理学院、国际关系学院和中国人民武装警察学院的"
    "5位专家教授，分三天、每天下午4点到6点在线直播授课，内容涉及基层治理、生态文明、数字治理、"
    "疫情防控、复工复产、国际形势以及网络舆情。"
)
SERIES_TIMEZONE = "Asia/Shanghai"
SESSION_START = (16, 0)
SESSION_END = (18, 0)

RUC = "中国人民大学"
SPEAKERS = {
    "liu": ("刘金龙", "教授", f"{RUC}农业与农村发展学院"),
    "li": ("李文钊", "教授", f"{RUC}公共管理学院"),
    "demo_ir": ("演示主讲人甲", "教授", f"{RUC}国际关系学院"),
    "demo_pap": ("演示主讲人乙", "教授", "中国人民武装警察学院"),
    "demo_pa": ("演示主讲人丙", "副教授", f"{RUC}公共管理学院"),
}

# (session title, [(lecture title, speaker key, start, end)]) for three consecutive days.
SESSIONS = [
    (
        "第一天：基层治理",
        [
            ("社区治理与设计文明建设", "liu", (16, 0), (17, 0)),
            ("超大城市基层治理的探索", "li", (17, 0), (18, 0)),
        ],
    ),
    (
        "第二天：生态文明与数字治理",
        [
            ("生态文明建设与乡村绿色发展", "liu", (16, 0), (17, 0)),
            ("数字治理与基层治理能力现代化", "demo_pa", (17, 0), (18, 0)),
        ],
    ),
    (
        "第三天：疫情防控、复工复产与形势研判",
        [
            ("疫情防控与复工复产", "demo_pap", (16, 0), (16, 40)),
            ("当前国际形势与我国发展环境", "demo_ir", (16, 40), (17, 20)),
            ("网络舆情的研判与引导", "demo_pap", (17, 20), (18, 0)),
        ],
    ),
]

TOWNSHIP = "卢沟桥乡"
OFFICE = "乡政府机关"
VILLAGES = [
    "大瓦窑村", "小瓦窑村", "郭庄子村", "大井村", "小井村", "六里桥村", "三路居村",
    "菜户营村", "万泉寺村", "东管头村", "西局村", "岳各庄村", "周庄子村", "靛厂村",
]  # fmt: skip
COMMUNITIES = [
    "丰益花园社区", "万泉寺社区", "青塔东里社区", "岳各庄社区", "小瓦窑社区",
    "晓月苑社区", "莲花池社区",
]  # fmt: skip
BRANCHES = [f"疫情防控第{n}空白点临时党支部" for n in "一二三四五"]

SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕"
GIVEN_NAMES = [
    "建国", "秀英", "志强", "丽华", "国庆", "海燕", "文斌", "春梅", "永明", "桂芳",
    "立新", "晓东", "红霞", "振华", "淑珍", "卫东", "玉兰", "德胜", "慧敏", "俊杰",
]  # fmt: skip

OFFICE_TITLES = ["党委副书记", "副乡长", "党委委员", "纪委书记", "人大主席", "武装部部长"]
DEPUTY_COUNT = 12  # township deputy-level cadres
PER_UNIT = (("党组织书记", 0), ("党组织副书记", 1))  # two cadres per community or village
PER_BRANCH = (("临时党支部书记", 0), ("临时党支部副书记", 1))

DEMO_PASSWORDS = {
    Role.ADMIN: "demo-admin-2026",
    Role.ORGANIZER: "demo-organizer-2026",
    Role.PARTICIPANT: "demo-participant-2026",
}
ADMIN = {"email": "admin@example.org", "display_name": "系统管理员（演示）"}
ORGANIZER = {"email": "organizer@example.org", "display_name": "乡党委组织委员（演示组织者）"}
# The participant account is the first of the 64 cadres: 大瓦窑村's party secretary.
PARTICIPANT_EMAIL = "participant@example.org"
PHONE_PREFIX = "139100"  # demo mobile numbers 139 1000 0001 …
LIAISON_UNIT = "大瓦窑村"
LIAISON_INDEX = 1  # 13910000002, the village's deputy secretary

UNIT_KINDS = {OFFICE: UnitKind.OFFICE}
UNIT_KINDS.update({name: UnitKind.VILLAGE for name in VILLAGES})
UNIT_KINDS.update({name: UnitKind.COMMUNITY for name in COMMUNITIES})
UNIT_KINDS.update({name: UnitKind.BRANCH for name in BRANCHES})


def cadres() -> list[dict]:
    """The 64 enrolled participants: 12 deputy-level cadres, 2 per community, village
    and branch; each with a unit, a job title and a demo mobile number."""
    people: list[tuple[str, str]] = []
    for name in VILLAGES + COMMUNITIES:
        people += [(name, title) for title, _ in PER_UNIT]
    people += [(OFFICE, OFFICE_TITLES[i % len(OFFICE_TITLES)]) for i in range(DEPUTY_COUNT)]
    for name in BRANCHES:
        people += [(name, title) for title, _ in PER_BRANCH]
    result = []
    for index, (unit, title) in enumerate(people):
        surname = SURNAMES[index % len(SURNAMES)]
        # A different given name each time the surnames come round: no two cadres alike.
        given = GIVEN_NAMES[(index * 7 + index // len(SURNAMES) * 3) % len(GIVEN_NAMES)]
        result.append(
            {
                "display_name": surname + given,
                "unit": unit,
                "job_title": title,
                "phone": f"{PHONE_PREFIX}{index + 1:05d}",
                "email": PARTICIPANT_EMAIL if index == 0 else None,
            }
        )
    return result
