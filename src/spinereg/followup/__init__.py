"""Follow-up: questionnaire invitations by e-mail or letter, reminders, contact and consent.

A reusable Django app (label ``spinereg_followup``) beside :mod:`spinereg.registry`:
add ``"spinereg.followup"`` to ``INSTALLED_APPS``.  Importing this package does not
configure Django.  The schedule rule (what is due on a day) is
:func:`spinereg.data.follow_up_schedule`; :mod:`spinereg.followup.service` creates,
delivers and audits the invitations.
"""
