import asyncio
from baxiflow.event  import WorkflowManager
from baxiflow.event import WorkflowEvent
from typing import AsyncGenerator

# Create a workflow
workflow = WorkflowManager()

# Define some simple handlers
async def greeting_handler(event: WorkflowEvent) -> AsyncGenerator[WorkflowEvent, None]:
    print(f"Greeting: Hello, {event.data['name']}!")
    
    # Report progress
    yield WorkflowEvent.progress("greeting", "Sending welcome message")
    
    # Continue to the next step
    yield WorkflowEvent(
        name="process_user",
        data={"name": event.data["name"], "action": "welcome"},
        metadata=event.metadata
    )

async def process_user_handler(event: WorkflowEvent) -> AsyncGenerator[WorkflowEvent, None]:
    print(f"Processing user: {event.data['name']} with action: {event.data['action']}")
    
    # Report progress
    yield WorkflowEvent.progress("processing", "Updating user records")
    
    # Complete the workflow
    yield WorkflowEvent(
        name="completed",
        data={"result": f"User {event.data['name']} processed successfully"},
        metadata=event.metadata
    )

# Register the handlers
workflow.register("start", greeting_handler)
workflow.register("process_user", process_user_handler)

# Start the workflow with an initial event
initial_event = WorkflowEvent(
    name="start",
    data={"name": "Alice"},
    metadata={"session_id": "12345"}
)

# Process the workflow and handle events
async def main():
    async for event in workflow.process(initial_event):
        if event.name == "progress":
            print(f"Progress update: {event.data['step']} - {event.data['description']}")
        elif event.name == "completed":
            print(f"Workflow completed: {event.data['result']}")
        elif event.name == "error":
            print(f"Error occurred: {event.error}")


# Run the main function as a stanalone script:
if __name__ == "__main__":
    asyncio.run(main())
