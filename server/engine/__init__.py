"""The engine: turns stored events into journeys and journeys into outbox rows.

Until the journey engine lands (issue #4) it runs one fixed slice: every
``form.submitted`` event sends the ``welcome`` email.
"""
