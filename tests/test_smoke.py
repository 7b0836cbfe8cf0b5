from storage.models import Role


async def test_owner_creates_and_lists_keywords(tenants):
    t = await tenants.create()
    await t.keywords("best running shoes", "Trail  Running Shoes", volume=100)
    page = await t.run("keywords.list", ordering="keyword")
    assert [k.keyword for k in page.results] == ["best running shoes", "trail running shoes"]
    assert page.count == 2
    assert t.owner.role == Role.OWNER
