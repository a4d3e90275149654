"""The admin areas marketers and operators work in: Contacts, Messages and Tasks.

Each area is a blueprint of its own (:func:`server.web.access.admin_blueprint`), listed in the navigation
and registered in ``create_app()``; every view declares its role. Lists page by keyset (:mod:`.paging`).
"""
