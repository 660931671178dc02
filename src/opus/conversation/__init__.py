"""The conversation between a job and a person: questions, answers, plan approval.

- `questions`: the `Question` record and the open questions of an FR body (pure).
- `waiting`: what the registry holds while a job waits (`spec.waiting`, `spec.conversation`)
  and the moves in and out of `waiting_input`.
- `notes`: the question and plan notes as text (render and parse, pure).
- `sync`: the intake host's side: writes the notes, reads answers and decisions.

See designs/conversation.md.
"""
